import Foundation
import RelayCore
import Testing

/// The streaming side: the same input in every chunking gives the same output,
/// memory stays bounded, and what cannot be repaired is refused.
@Suite("Message repair: stream")
struct RelayMessageRepairStreamTests {
    static let complete = "Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMessage-ID: <m1@device>\r\n"

    static func context(_ rules: RelaySenderRules = .init(), sender: String = "scanner@contoso.com") -> RelayMessageRepair.Context {
        .init(rules: rules, envelopeSender: sender, queueID: "Q1", hostname: "relay.test", date: Date(timeIntervalSince1970: 0))
    }

    static func small() -> RelayMessageRepair.Limits {
        var limits = RelayMessageRepair.Limits()
        limits.maximumHeaderSection = 4096
        limits.bodyLookahead = 8192
        return limits
    }

    /// Feeds `input` in chunks of `size`; returns everything written, or the refusal reason.
    static func run(_ input: [UInt8], size: Int, context: RelayMessageRepair.Context = context(), limits: RelayMessageRepair.Limits = small())
        -> (output: [UInt8], refusal: String?, repairs: [RelayRepair], maxHeld: Int) {
        var stream = RelayMessageRepairStream(context: context, limits: limits)
        var output: [UInt8] = []
        var index = 0
        var consumed = 0
        var maxHeld = 0
        // The sink stops feeding a refused stream, and so does this.
        while index < input.count, stream.refusal == nil {
            let chunk = input[index..<min(index + size, input.count)]
            output += stream.consume(chunk)
            index += size
            consumed += chunk.count
            // What is held back is what came in and has not gone out (QP grows output, so clamp).
            maxHeld = max(maxHeld, consumed - min(consumed, output.count))
        }
        switch stream.finish() {
        case .success(let rest): return (output + rest, nil, stream.applied, maxHeld)
        case .failure(let refusal): return (output, refusal.reason, stream.applied, maxHeld)
        }
    }

    static let chunkings = [1, 2, 3, 5, 64, 1000, 100_000]

    struct Case: CustomTestStringConvertible, Sendable {
        var name: String
        var input: String
        var expected: String?
        var refusal: String?
        var repairs: [RelayRepair] = []
        var testDescription: String { name }
    }

    static let longText = String(repeating: "0123456789", count: 120)  // 1200 octets
    static let cases: [Case] = [
        Case(name: "compliant message passes unchanged",
             input: "From: a@contoso.com\r\n" + complete + "\r\nbody\r\n.dot\r\n",
             expected: "From: a@contoso.com\r\n" + complete + "\r\nbody\r\n.dot\r\n"),
        Case(name: "headers only, no body",
             input: "From: a@contoso.com\r\n" + complete,
             expected: "From: a@contoso.com\r\n" + complete + "\r\n"),
        Case(name: "no header at all: the body begins at once",
             input: "Hello,\r\nthe scan is attached.\r\n",
             expected: "From: scanner@contoso.com\r\nMessage-ID: <Q1@relay.test>\r\nDate: Thu, 1 Jan 1970 00:00:00 +0000\r\n\r\nHello,\r\nthe scan is attached.\r\n",
             repairs: [.headerEndAdded, .fromAdded, .messageIDAdded, .dateAdded]),
        Case(name: "a body line right after the fields, without the empty line",
             input: "From: a@contoso.com\r\n" + complete + "this is body text\r\n",
             expected: "From: a@contoso.com\r\n" + complete + "\r\nthis is body text\r\n",
             repairs: [.headerEndAdded]),
        Case(name: "a continuation line first is body",
             input: " indented\r\n",
             expected: "From: scanner@contoso.com\r\nMessage-ID: <Q1@relay.test>\r\nDate: Thu, 1 Jan 1970 00:00:00 +0000\r\n\r\n indented\r\n",
             repairs: [.headerEndAdded, .fromAdded, .messageIDAdded, .dateAdded]),
        Case(name: "a long line in a plain text body is re-encoded",
             input: "From: a@contoso.com\r\n" + complete + "\r\nshort\r\n" + longText + "\r\n",
             expected: "From: a@contoso.com\r\n" + complete
                + "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nshort\r\n"
                + qp(longText) + "\r\n",
             repairs: [.bodyQuotedPrintable]),
        Case(name: "a long line in a multipart body is refused",
             input: "From: a@contoso.com\r\n" + complete + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + longText + "\r\n--b--\r\n",
             refusal: "body-line-too-long"),
        Case(name: "a long line in a base64 body is refused",
             input: "From: a@contoso.com\r\n" + complete + "Content-Transfer-Encoding: base64\r\n\r\n" + longText + "\r\n",
             refusal: "body-line-too-long"),
        Case(name: "header refusals are kept to the end",
             input: "From: ceo@contoso.com\r\n" + complete + "\r\nbody\r\n",
             refusal: "header-from-not-allowed"),
    ]

    static func qp(_ text: String) -> String {
        var encoder = RelayQuotedPrintableEncoder()
        return String(decoding: encoder.encode(Array(text.utf8)) + encoder.finish(), as: UTF8.self)
    }

    @Test(arguments: cases, chunkings)
    func everyChunkingGivesTheSameResult(_ test: Case, _ size: Int) {
        let rules = RelaySenderRules(allowedSenders: ["a@contoso.com", "scanner@contoso.com"])
        let result = Self.run(Array(test.input.utf8), size: size, context: Self.context(rules))
        #expect(result.refusal == test.refusal)
        if let expected = test.expected {
            #expect(String(decoding: result.output, as: UTF8.self) == expected)
        }
        if test.refusal == nil { #expect(result.repairs == test.repairs) }
    }

    @Test func headerSectionOverTheLimitIsRefusedWithoutHoldingMore() {
        let many = (0..<200).map { "X-Field-\($0): " + String(repeating: "v", count: 40) + "\r\n" }.joined()
        for size in [1, 100, 10_000] {
            let result = Self.run(Array(("From: a@contoso.com\r\n" + many + "\r\nbody\r\n").utf8), size: size)
            #expect(result.refusal == "header-section-too-large")
            #expect(result.output.isEmpty)
            #expect(result.maxHeld <= 4096 + size, "held \(result.maxHeld)")
        }
    }

    @Test func headerAtTheLimitEndsAtItsEmptyLine() {
        let limits = Self.small()
        var header = "From: scanner@contoso.com\r\n" + Self.complete
        while header.utf8.count + 30 < limits.maximumHeaderSection { header += "X-Pad: 0123456789012345678\r\n" }
        let result = Self.run(Array((header + "\r\nbody\r\n").utf8), size: 7)
        #expect(result.refusal == nil)
        #expect(String(decoding: result.output, as: UTF8.self) == header + "\r\nbody\r\n")
    }

    @Test func largeTextBodyWithoutLongLinesStreamsAfterTheLookahead() {
        let line = String(repeating: "x", count: 70) + "\r\n"
        let body = String(repeating: line, count: 1000)  // 72 000 octets, far over the 8 KiB lookahead
        let input = Array(("From: a@contoso.com\r\n" + Self.complete + "\r\n" + body).utf8)
        let result = Self.run(input, size: 1000, context: Self.context(RelaySenderRules(allowedSenders: ["a@contoso.com"])))
        #expect(result.refusal == nil)
        #expect(result.output == input)
        #expect(result.maxHeld <= 8192 + 1000 + 512, "the body is held only up to the lookahead: \(result.maxHeld)")
    }

    @Test func longLineAfterTheLookaheadIsRefusedAndSaysWhy() {
        let line = String(repeating: "x", count: 70) + "\r\n"
        let body = String(repeating: line, count: 200) + Self.longText + "\r\n"
        var stream = RelayMessageRepairStream(context: Self.context(), limits: Self.small())
        _ = stream.consume(Array(("From: scanner@contoso.com\r\n" + Self.complete + "\r\n" + body).utf8))
        guard case .failure(let refusal) = stream.finish() else { Issue.record("accepted"); return }
        #expect(refusal.reply.code == 554)
        #expect(refusal.reply.enhanced?.description == "5.6.0")
        #expect(refusal.reply.text.contains("998"))
        #expect(refusal.reply.text.contains("8192 octets"))
    }

    @Test func refusalForMultipartSaysWhy() {
        var stream = RelayMessageRepairStream(context: Self.context(), limits: Self.small())
        _ = stream.consume(Array(("From: scanner@contoso.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + Self.longText + "\r\n").utf8))
        let reply = stream.refusal?.reply
        #expect(reply?.text.contains("multipart/mixed") == true, "\(String(describing: reply))")
        // Everything after a refusal is dropped.
        #expect(stream.consume(Array("more\r\n".utf8)).isEmpty)
    }

    @Test func reencodedBodyDecodesToTheOriginal() throws {
        let body = "Grüße\r\n" + Self.longText + " trailing \r\nend\r\n"
        let result = Self.run(Array(("From: scanner@contoso.com\r\n" + Self.complete + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).utf8), size: 13)
        #expect(result.refusal == nil)
        let headerEnd = try #require(result.output.firstRange(of: Array("\r\n\r\n".utf8)))
        let encoded = result.output[headerEnd.upperBound...]
        #expect(RelayTransferEncoding.decodeQuotedPrintable(encoded) == Array(body.utf8))
        #expect(String(decoding: result.output[..<headerEnd.lowerBound], as: UTF8.self).contains("Content-Transfer-Encoding: quoted-printable"))
    }

    @Test func aStreamingBodyIsHandedBackUncopied() {
        var stream = RelayMessageRepairStream(context: Self.context(), limits: Self.small())
        let head = stream.consumeInPlace(Array(("From: scanner@contoso.com\r\n" + Self.complete + "Content-Type: application/pdf\r\n\r\n").utf8))
        #expect(head.map { String(decoding: $0, as: UTF8.self) } == "From: scanner@contoso.com\r\n" + Self.complete + "Content-Type: application/pdf\r\n\r\n")
        #expect(stream.consumeInPlace(Array("JVBERi0xLjQK\r\n".utf8)) == nil, "written as it came")
        #expect(stream.consumeInPlace(Array((Self.longText + "\r\n").utf8)) == [], "a long line refuses")
        #expect(stream.refusal?.reason == "body-line-too-long")
    }

    @Test func theRewrittenSenderIsWhatTheStreamReports() {
        let rules = RelaySenderRules(allowedSenders: ["scanner@contoso.com"], rewriteSender: "scanner@contoso.com", rewriteDisplayName: .drop)
        var stream = RelayMessageRepairStream(context: Self.context(rules, sender: "device@printer.local"))
        _ = stream.consume(Array("From: Device <device@printer.local>\r\n\r\nbody\r\n".utf8))
        #expect(stream.header?.envelopeSender == "scanner@contoso.com")
        #expect(stream.header?.messageID == "<Q1@relay.test>")
    }
}

@Suite("Message audit line")
struct RelayMessageAuditTests {
    @Test func clientValuesAreEscapedAndContentIsAbsent() {
        let envelope = RelayEnvelope(
            sender: "a\r\nforged: yes@contoso.com", recipients: ["x@contoso.com", "y@contoso.com"], clientName: "scanners",
            clientAddress: "10.0.0.5", heloName: "h", tlsVersion: "TLSv1.3", authenticatedAs: "user\u{1B}[31m", route: "tenant")
        let audit = RelayMessageAudit(
            queueID: "Q1", envelope: envelope, originalSender: "dev\nice@x", size: 1234, messageID: "<id\r\n@x>",
            decision: .queued, replyCode: 250, repairs: [.messageIDAdded, .headerStripped("X-Originating-IP")])
        let fields = Dictionary(uniqueKeysWithValues: audit.fields.map { ($0.key, $0.value) })
        #expect(fields["queue_id"] == "Q1")
        #expect(fields["decision"] == "queued")
        #expect(fields["client"] == "scanners")
        #expect(fields["client_ip"] == "10.0.0.5")
        #expect(fields["tls"] == "TLSv1.3")
        #expect(fields["rcpt_count"] == "2")
        #expect(fields["size"] == "1234")
        #expect(fields["from"] == "a\\r\\nforged: yes@contoso.com")
        #expect(fields["original_from"] == "dev\\nice@x")
        #expect(fields["auth_identity"] == "user\\x1B[31m")
        #expect(fields["message_id"] == "<id\\r\\n@x>")
        #expect(fields["repairs"] == "message-id-added,stripped:X-Originating-IP")
        #expect(audit.fields.allSatisfy { !$0.value.contains("\r") && !$0.value.contains("\n") && !$0.value.unicodeScalars.contains { $0.value < 32 } })
    }

    @Test func refusalCarriesItsReason() {
        let envelope = RelayEnvelope(sender: "", recipients: ["x@contoso.com"], clientName: "c", clientAddress: "::1", heloName: "h", route: "r")
        let audit = RelayMessageAudit(queueID: "Q2", envelope: envelope, decision: .refused, reason: "header-from-not-allowed", replyCode: 550)
        let fields = Dictionary(uniqueKeysWithValues: audit.fields.map { ($0.key, $0.value) })
        #expect(fields["from"] == "<>")
        #expect(fields["reason"] == "header-from-not-allowed")
        #expect(fields["tls"] == "none")
        #expect(fields["repairs"] == "none")
        #expect(fields["size"] == nil)
    }
}
