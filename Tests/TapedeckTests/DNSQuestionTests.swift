import Testing

@testable import Tapedeck

/// A DNS question read from bytes, matched whatever the id and letter case, and answers fitted to a live query.
struct DNSQuestionTests {
    /// A query for `name` of `type`, class IN, with transaction id `id`.
    static func query(_ name: String, type: UInt16 = 1, id: UInt16 = 0x1234) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") {
            bytes.append(UInt8(label.utf8.count))
            bytes += label.utf8
        }
        bytes += [0, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
        return bytes
    }

    @Test func aQueryIsReadWithItsNameTypeAndClass() throws {
        let question = try #require(DNSQuestion(message: Self.query("www.Example.com", type: 28)))
        #expect(question.name == "www.Example.com.")
        #expect(question.type == 28)
        #expect(question.queryClass == 1)
        #expect(question.key == DNSQuestion(message: Self.query("WWW.example.COM", type: 28, id: 9))?.key)
        #expect(question.key != DNSQuestion(message: Self.query("www.example.com", type: 1))?.key)
    }

    @Test func truncatedAndHostileBytesAreNotAQuestion() {
        let whole = Self.query("example.com")
        for end in 0..<whole.count {
            #expect(DNSQuestion(message: Array(whole[..<end])) == nil, "cut at \(end)")
        }
        // A compression pointer to itself must not loop.
        var looping: [UInt8] = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1]
        #expect(DNSQuestion(message: looping) == nil)
        looping[5] = 0
        #expect(DNSQuestion(message: looping) == nil, "no question")
    }

    @Test func aRecordedAnswerTakesTheLiveIdAndLetterCase() throws {
        // The recorded answer: the question, then one A record pointing back at the name.
        let recorded =
            Self.query("example.com", id: 0xAAAA) + [0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]
        let live = Self.query("eXaMpLe.CoM", id: 0xBEEF)
        let fitted = try #require(DNSQuestion.answer(recorded, fittedTo: live))
        #expect(Array(fitted[0..<2]) == [0xBE, 0xEF])
        #expect(DNSQuestion(message: fitted)?.name == "eXaMpLe.CoM.")
        #expect(Array(fitted[live.count...]) == Array(recorded[live.count...]))
        #expect(DNSQuestion.answer(recorded, fittedTo: Self.query("other.com")) == nil)
    }
}
