import Foundation

/// `POST /proxies/{name}/toxics/{toxic}`: a change of a toxic's `attributes` (merged into the ones it has, as in
/// Toxiproxy), `toxicity` or `stream`.
enum ToxicUpdate {
    /// The toxic with the changes of a request's body applied.
    ///
    /// - Throws: ``ControlError`` (400) for a change of its type or name, an unknown field, or a value that is
    ///   not valid.
    static func apply(_ body: [String: Any], to toxic: Toxic) throws -> Toxic {
        guard var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(toxic)) as? [String: Any]
        else { throw ControlError(.failed, "cannot encode toxic '\(toxic.name)'") }
        for (key, value) in body {
            switch key {
            case "attributes":
                guard let changes = value as? [String: Any] else {
                    throw ControlError(.badRequest, "bad request body: field 'attributes' must be an object")
                }
                var attributes = object["attributes"] as? [String: Any] ?? [:]
                for (name, value) in changes { attributes[name] = value }
                object["attributes"] = attributes
            case "type":
                guard value as? String == toxic.kind.rawValue else {
                    throw ControlError(
                        .badRequest,
                        "a toxic's type cannot change ('\(toxic.name)' is \(toxic.kind.rawValue)): delete it and add "
                            + "another"
                    )
                }
            case "name":
                guard value as? String == toxic.name else {
                    throw ControlError(
                        .badRequest,
                        "a toxic's name cannot change: delete '\(toxic.name)' and add another"
                    )
                }
            default:
                // toxicity and stream; any other field is named by the decoder.
                object[key] = value
            }
        }
        return try ControlAPI.decodeToxic(try JSONSerialization.data(withJSONObject: object))
    }
}
