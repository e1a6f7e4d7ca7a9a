import Testing

@testable import Tapedeck

/// Whole DNS messages decoded for display, from bytes built by hand: every record type rendered as dig renders
/// it, compression, and hostile or cut-off bytes refused without a trap.
struct DNSMessageTests {
    /// Builds messages the way a server lays them out, so each test states only what it is about.
    struct Builder {
        var bytes: [UInt8]

        /// A header with `id`, the flag bits of bytes 2 and 3, and the four section counts.
        init(id: UInt16 = 0x1A2B, flags: UInt16 = 0x0100, counts: [UInt16] = [1, 0, 0, 0]) {
            bytes = []
            bytes.appendBigEndian(id)
            bytes.appendBigEndian(flags)
            for count in counts { bytes.appendBigEndian(count) }
        }

        /// `text` as uncompressed labels ending in the root.
        static func name(_ text: String) -> [UInt8] {
            var bytes: [UInt8] = []
            for label in text.split(separator: ".") {
                bytes.append(UInt8(label.utf8.count))
                bytes += label.utf8
            }
            return bytes + [0]
        }

        /// A compression pointer to `offset`.
        static func pointer(_ offset: Int) -> [UInt8] { [0xC0 | UInt8(offset >> 8), UInt8(offset & 0xFF)] }

        /// Appends a question.
        mutating func question(_ name: [UInt8], type: UInt16 = 1, class recordClass: UInt16 = 1) {
            bytes += name
            bytes.appendBigEndian(type)
            bytes.appendBigEndian(recordClass)
        }

        /// Appends a record; `data` may hold pointers, which is why it is given as bytes.
        mutating func record(
            _ name: [UInt8],
            type: UInt16,
            class recordClass: UInt16 = 1,
            ttl: UInt32 = 300,
            data: [UInt8]
        ) {
            bytes += name
            bytes.appendBigEndian(type)
            bytes.appendBigEndian(recordClass)
            bytes.appendBigEndian(ttl)
            bytes.appendBigEndian(UInt16(data.count))
            bytes += data
        }
    }

    static func uint16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    static func uint32(_ value: UInt32) -> [UInt8] { uint16(UInt16(value >> 16)) + uint16(UInt16(value & 0xFFFF)) }

    /// A query for www.example.test A with RD set.
    static var query: [UInt8] {
        var builder = Builder()
        builder.question(Builder.name("www.example.test"))
        return builder.bytes
    }

    /// An NXDOMAIN answer with the zone's SOA in the authority section, names compressed as servers do.
    static var negativeResponse: [UInt8] {
        var builder = Builder(id: 0xBEEF, flags: 0x8583, counts: [1, 0, 1, 0])
        builder.question(Builder.name("nothing.example.test"))
        // "example.test" of the question starts after "nothing" (1 + 7 bytes) at offset 20.
        builder.record(
            Builder.pointer(20),
            type: 6,
            data: [3] + Array("ns1".utf8) + Builder.pointer(20) + [10] + Array("hostmaster".utf8)
                + Builder.pointer(20) + uint32(2_024_010_101) + uint32(3600) + uint32(900) + uint32(604_800)
                + uint32(300)
        )
        return builder.bytes
    }

    @Test func aQueryIsOneLineWithItsIdFlagsAndQuestion() throws {
        let message = try DNSMessage(decoding: Self.query)
        #expect(message.lines == ["query id 0x1a2b RD: www.example.test. IN A"])
        #expect(message.header.id == 0x1A2B)
        #expect(!message.header.isResponse)
        #expect(message.header.recursionDesired)
        #expect(message.questions.first?.type == .a)
        #expect(message.responseCodeName == "NOERROR")
    }

    @Test func everyDecodedRecordTypeReadsAsDigShowsIt() throws {
        var builder = Builder(flags: 0x8580, counts: [1, 13, 1, 2])
        builder.question(Builder.name("www.example.test"))
        let www = Builder.pointer(12)
        let mail = Builder.name("mail.example.test")
        builder.record(www, type: 1, data: [192, 0, 2, 1])
        builder.record(www, type: 28, data: [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1])
        builder.record(www, type: 5, data: Builder.name("web.example.test"))
        builder.record(www, type: 15, data: Self.uint16(10) + mail)
        builder.record(www, type: 16, data: [11] + Array("v=spf1 -all".utf8) + [5] + Array("a\"b\\c".utf8) + [1, 7])
        builder.record(
            Builder.name("_sip._tcp.example.test"),
            type: 33,
            data: Self.uint16(10) + Self.uint16(60) + Self.uint16(5060) + Builder.name("sip.example.test")
        )
        builder.record(
            Builder.name("1.2.0.192.in-addr.arpa"),
            type: 12,
            ttl: 3600,
            data: Builder.name("host.example.test")
        )
        builder.record(www, type: 257, data: [0, 5] + Array("issue".utf8) + Array("ca.example.test".utf8))
        let params: [UInt8] =
            Self.uint16(1) + Self.uint16(6) + [2] + Array("h2".utf8) + [2] + Array("h3".utf8)
            + Self.uint16(3) + Self.uint16(2) + Self.uint16(443)
            + Self.uint16(4) + Self.uint16(8) + [192, 0, 2, 1, 192, 0, 2, 2]
            + Self.uint16(6) + Self.uint16(16) + [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [2]
        builder.record(www, type: 65, data: Self.uint16(1) + [0] + params)
        builder.record(www, type: 64, data: Self.uint16(0) + Builder.name("svc.example.test"))
        builder.record(www, type: 65_280, data: [1, 2, 3])
        builder.record(www, type: 99, data: [])
        builder.record(Builder.name("version.bind"), type: 16, class: 3, ttl: 0, data: [4] + Array("9.18".utf8))
        builder.record(Builder.name("example.test"), type: 2, data: Builder.name("ns1.example.test"))
        // OPT: UDP size 1232 in the class, DO in the TTL, a cookie option.
        builder.record([0], type: 41, class: 1232, ttl: 0x0000_8000, data: [0, 10, 0, 8] + Array(1...8))
        builder.record(mail, type: 1, data: [192, 0, 2, 25])

        let message = try DNSMessage(decoding: builder.bytes)
        #expect(
            message.lines == [
                "response id 0x1a2b QR AA RD RA NOERROR: www.example.test. IN A",
                "  answer www.example.test. 300 IN A 192.0.2.1",
                "  answer www.example.test. 300 IN AAAA 2001:db8::1",
                "  answer www.example.test. 300 IN CNAME web.example.test.",
                "  answer www.example.test. 300 IN MX 10 mail.example.test.",
                #"  answer www.example.test. 300 IN TXT "v=spf1 -all" "a\"b\\c" "\007""#,
                "  answer _sip._tcp.example.test. 300 IN SRV 10 60 5060 sip.example.test.",
                "  answer 1.2.0.192.in-addr.arpa. 3600 IN PTR host.example.test.",
                #"  answer www.example.test. 300 IN CAA 0 issue "ca.example.test""#,
                #"  answer www.example.test. 300 IN HTTPS 1 . alpn="h2,h3" port=443 ipv4hint=192.0.2.1,192.0.2.2 "#
                    + "ipv6hint=2001:db8::2",
                "  answer www.example.test. 300 IN SVCB 0 svc.example.test.",
                ##"  answer www.example.test. 300 IN TYPE65280 \# 3 010203"##,
                ##"  answer www.example.test. 300 IN SPF \# 0"##,
                #"  answer version.bind. 0 CH TXT "9.18""#,
                "  authority example.test. 300 IN NS ns1.example.test.",
                "  additional EDNS version 0 udp 1232 do COOKIE 0102030405060708",
                "  additional mail.example.test. 300 IN A 192.0.2.25",
            ]
        )
        let edns = try #require(message.edns)
        #expect(edns.udpPayloadSize == 1232)
        #expect(edns.dnssecOK)
        #expect(edns.options == [.init(code: 10, data: Array(1...8))])
    }

    @Test func aNegativeAnswerShowsItsCodeAndTheZonesSOA() throws {
        let message = try DNSMessage(decoding: Self.negativeResponse)
        #expect(
            message.lines == [
                "response id 0xbeef QR AA RD RA NXDOMAIN: nothing.example.test. IN A",
                "  authority example.test. 300 IN SOA ns1.example.test. hostmaster.example.test. 2024010101 3600 900 "
                    + "604800 300",
            ]
        )
        #expect(message.responseCode == 3)
        #expect(message.authorities.first?.type == .soa)
    }

    @Test func responseCodesAndOpcodesAreNamed() throws {
        let names = [1: "FORMERR", 2: "SERVFAIL", 4: "NOTIMP", 5: "REFUSED", 9: "NOTAUTH", 12: "RCODE12"]
        for (code, name) in names {
            var builder = Builder(flags: 0x8100 | UInt16(code))
            builder.question(Builder.name("example.test"), type: 28)
            #expect(
                try DNSMessage(decoding: builder.bytes).lines == [
                    "response id 0x1a2b QR RD \(name): example.test. IN AAAA"
                ]
            )
        }
        // An OPT record's extended code raises 0 to 16: BADVERS.
        var extended = Builder(flags: 0x8000, counts: [1, 0, 0, 1])
        extended.question(Builder.name("example.test"))
        extended.record([0], type: 41, class: 4096, ttl: 0x0100_0000, data: [])
        let message = try DNSMessage(decoding: extended.bytes)
        #expect(message.responseCodeName == "BADVERS")
        #expect(message.lines.last == "  additional EDNS version 0 udp 4096")
        // A NOTIFY names its opcode; an unknown class and type their numbers; no question says so.
        var notify = Builder(flags: 0x2400)
        notify.question(Builder.name("example.test"), type: 6_000, class: 77)
        #expect(
            try DNSMessage(decoding: notify.bytes).lines == [
                "query id 0x1a2b NOTIFY AA: example.test. CLASS77 TYPE6000"
            ]
        )
        #expect(
            try DNSMessage(decoding: Builder(flags: 0x8000, counts: [0, 0, 0, 0]).bytes).lines == [
                "response id 0x1a2b QR NOERROR: no question"
            ]
        )
    }

    @Test func compressedNamesFollowPointersBackwards() throws {
        var builder = Builder(flags: 0x8180, counts: [1, 2, 0, 0])
        builder.question(Builder.name("www.example.test"))
        // The CNAME target is "cdn" then a pointer to "example.test" inside the question (offset 16); the second
        // record's owner is a pointer to that target, a chain of two pointers.
        let targetOffset = builder.bytes.count + 2 + 10
        builder.record(Builder.pointer(12), type: 5, data: [3] + Array("cdn".utf8) + Builder.pointer(16))
        builder.record(Builder.pointer(targetOffset), type: 1, ttl: 60, data: [198, 51, 100, 7])
        let message = try DNSMessage(decoding: builder.bytes)
        #expect(
            message.lines == [
                "response id 0x1a2b QR RD RA NOERROR: www.example.test. IN A",
                "  answer www.example.test. 300 IN CNAME cdn.example.test.",
                "  answer cdn.example.test. 60 IN A 198.51.100.7",
            ]
        )
        #expect(message.trailingByteCount == 0)
    }

    @Test func pointerLoopsAndForwardPointersAreRefused() {
        // A pointer to itself.
        var selfLoop = Builder()
        selfLoop.question(Builder.pointer(12))
        // A label and then a pointer back to that label: every jump would land on the same run.
        var runLoop = Builder()
        runLoop.question([1, UInt8(ascii: "a")] + Builder.pointer(12))
        // A pointer forward, to a name that points back at it.
        var pingPong = Builder(counts: [1, 0, 0, 0])
        pingPong.question(Builder.pointer(18) + [0, 1, 0, 1])
        pingPong.bytes += Builder.pointer(12)
        // A reserved label type.
        var reserved = Builder()
        reserved.question([0x80, 1, 0])
        for bytes in [selfLoop.bytes, runLoop.bytes, pingPong.bytes, reserved.bytes] {
            #expect(throws: DNSMessage.DecodingError.self) { try DNSMessage(decoding: bytes) }
            #expect(!DNSMessage.isPlausible(bytes))
            #expect(DNSQuestion(message: bytes) == nil)
        }
        // A chain of more pointers than allowed, each going backwards.
        var chain = Builder(counts: [1, 0, 0, 0])
        chain.bytes += [0]
        for index in 0...DNSName.maximumPointers {
            chain.bytes += Builder.pointer(12 + 2 * index - (index == 0 ? 0 : 1))
        }
        #expect(DNSName.read(in: chain.bytes, at: chain.bytes.count - 2) == nil)
        #expect(DNSName.read(in: chain.bytes, at: chain.bytes.count - 4)?.name.labels == [])
    }

    @Test func everyCutOfAValidMessageFailsCleanly() throws {
        var builder = Builder(flags: 0x8180, counts: [1, 2, 1, 1])
        builder.question(Builder.name("www.example.test"), type: 15)
        builder.record(
            Builder.pointer(12),
            type: 15,
            data: Self.uint16(5) + [4] + Array("mail".utf8) + Builder.pointer(16)
        )
        builder.record(Builder.pointer(12), type: 16, data: [3] + Array("abc".utf8))
        builder.record(Builder.pointer(16), type: 2, data: [2] + Array("ns".utf8) + Builder.pointer(16))
        builder.record([0], type: 41, class: 1232, ttl: 0, data: [])
        let whole = builder.bytes
        #expect(try DNSMessage(decoding: whole).lines.count == 5)
        for end in 0..<whole.count {
            let cut = Array(whole[..<end])
            #expect(DNSMessage(cut) == nil, "cut at \(end)")
            _ = DNSMessage.isPlausible(cut)
        }
        #expect(throws: DNSMessage.DecodingError(reason: "5 bytes are shorter than a DNS header", offset: 0)) {
            try DNSMessage(decoding: whole.prefix(5))
        }
        let error = try #require(throws: DNSMessage.DecodingError.self) { try DNSMessage(decoding: whole.prefix(40)) }
        #expect(error.description.hasPrefix("not a DNS message: the answer record 1 is malformed"))
    }

    @Test func randomlyDamagedMessagesNeverTrap() {
        var random = SplitMix64(seed: 0xD15C)
        let originals = [Self.query, Self.negativeResponse]
        var decoded = 0
        for round in 0..<4_000 {
            var bytes = originals[round % 2]
            for _ in 0...Int(random.next() % 4) {
                let index = Int(random.next() % UInt64(bytes.count))
                bytes[index] = UInt8(truncatingIfNeeded: random.next())
            }
            if round % 7 == 0 {
                bytes += (0..<Int(random.next() % 20)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            }
            if let message = DNSMessage(bytes) {
                decoded += 1
                #expect(!message.lines.isEmpty)
            }
            _ = DNSMessage.isPlausible(bytes)
        }
        // Most damage lands in names or data and still decodes; the point is that nothing trapped.
        #expect(decoded > 0)
    }

    @Test func plausibilityTellsDNSFromOtherPayloads() {
        #expect(DNSMessage.isPlausible(Self.query))
        #expect(DNSMessage.isPlausible(Self.negativeResponse))
        #expect(!DNSMessage.isPlausible(Array("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n".utf8)))
        #expect(!DNSMessage.isPlausible(Array("*1\r\n$4\r\nPING\r\n".utf8)))
        #expect(!DNSMessage.isPlausible([0x16, 0x03, 0x01, 0x00, 0xA5, 0x01, 0x00, 0x00, 0xA1, 0x03, 0x03, 0x00]))
        #expect(!DNSMessage.isPlausible(Array(Self.query.prefix(11))))
        #expect(!DNSMessage.isPlausible(Builder(counts: [0, 0, 0, 0]).bytes), "no question")
        var reservedBit = Self.query
        reservedBit[3] |= 0x40
        #expect(!DNSMessage.isPlausible(reservedBit))
        var manyRecords = Self.query
        manyRecords[7] = 200
        #expect(!DNSMessage.isPlausible(manyRecords), "more records than the bytes could hold")
    }

    @Test func malformedDataOfAKnownTypeIsShownGenerically() throws {
        var builder = Builder(flags: 0x8180, counts: [1, 3, 0, 0])
        builder.question(Builder.name("example.test"))
        builder.record(Builder.pointer(12), type: 1, data: [192, 0, 2])
        builder.record(Builder.pointer(12), type: 5, data: Builder.name("a.test") + [0xFF])
        builder.record(Builder.pointer(12), type: 16, data: [])
        #expect(
            try DNSMessage(decoding: builder.bytes).lines.dropFirst() == [
                ##"  answer example.test. 300 IN A \# 3 C00002"##,
                ##"  answer example.test. 300 IN CNAME \# 9 0161047465737400FF"##,
                ##"  answer example.test. 300 IN TXT \# 0"##,
            ]
        )
    }

    @Test func namesEscapeWhatDigEscapes() throws {
        let labels: [[UInt8]] = [Array("a.b".utf8), [UInt8(ascii: "c"), 0x20, 0x01, UInt8(ascii: "\\")]]
        #expect(DNSName(labels: labels).presentation == #"a\.b.c\032\001\\."#)
        #expect(DNSName(labels: []).presentation == ".")
        #expect(DNSName(labels: []).text == ".")
        // 255 bytes on the wire is the limit, root included.
        let long = [UInt8]((0..<4).flatMap { _ in [62] + [UInt8](repeating: UInt8(ascii: "x"), count: 62) }) + [0]
        #expect(long.count == 253)
        #expect(DNSName.read(in: long, at: 0)?.end == 253)
        let tooLong = [3] + Array("abc".utf8) + long
        #expect(DNSName.read(in: tooLong, at: 0) == nil)
    }
}
