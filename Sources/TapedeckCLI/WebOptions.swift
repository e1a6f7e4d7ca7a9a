import ArgumentParser
import Tapedeck

/// `--web ADDR`: serve the web inspector over the deck's tape on `record`, `replay` and `run`.
struct WebOptions: ParsableArguments {
    @Option(
        name: .customLong("web"),
        help: ArgumentHelp(
            "Serve the web inspector over the tape on this address, as 127.0.0.1:0, to watch sessions (and a "
                + "replay's mismatches) arrive; off by default.",
            valueName: "address"
        ),
        transform: Endpoint.init(parsing:)
    )
    var address: Endpoint?

    func validate() throws {
        if let address, address.isDatagram {
            throw ValidationError("invalid --web \(address): the web inspector speaks HTTP over TCP; give HOST:PORT")
        }
    }
}
