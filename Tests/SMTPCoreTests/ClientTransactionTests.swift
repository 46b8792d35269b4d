import NIOCore
import SMTPCore
import Testing

private let alice = SMTPMailbox(localPart: "alice", domain: "contoso.com")
private let bob = SMTPMailbox(localPart: "bob", domain: "example.org")
private let carol = SMTPMailbox(localPart: "carol", domain: "example.org")

private func capabilities(pipelining: Bool, _ more: [String] = ["SIZE 35882577", "8BITMIME"]) -> SMTPCapabilities {
    let keywords = (pipelining ? ["PIPELINING"] : []) + more
    var wire = "250\(keywords.isEmpty ? " " : "-")mx.example.org Hello\r\n"
    for (index, keyword) in keywords.enumerated() {
        wire += "250\(index == keywords.count - 1 ? " " : "-")\(keyword)\r\n"
    }
    return SMTPCapabilities(ehloReply: reply(wire))
}

private let envelope = SMTPClientEnvelope(sender: .mailbox(alice), recipients: [bob, carol], size: 1200)

/// What a transaction did: the `C:`/`S:` transcript, and its result or error.
private struct TransactionRun {
    var transcript: [String] = []
    var result: SMTPClientTransactionResult?
    var error: SMTPClientError?

    /// `bob: delivered 250 2.0.0`, one per recipient.
    var outcomes: [String] {
        (result?.recipients ?? []).map { recipient in
            let kind: String
            switch recipient.status {
            case .delivered: kind = "delivered"
            case .temporaryFailure: kind = "temporary"
            case .permanentFailure: kind = "permanent"
            }
            let reply = recipient.status.reply
            return "\(recipient.recipient.localPart): \(kind) \(reply.code)" + (reply.enhanced.map { " \($0)" } ?? "")
        }
    }
}

/// Runs a transaction against a scripted server. The script's `S:` lines are
/// the replies, fed in order; the run's transcript interleaves them with the
/// `C:` lines the transaction sends, so a test compares it with the script.
private func run(
    _ script: [String], capabilities: SMTPCapabilities, envelope: SMTPClientEnvelope = envelope
) -> TransactionRun {
    var transaction = SMTPClientTransaction(capabilities: capabilities, envelope: envelope)
    var replies = script.filter { $0.hasPrefix("S: ") }.map { String($0.dropFirst(3)) }[...]
    var run = TransactionRun()
    var action = transaction.start()

    func nextReply(_ action: inout SMTPClientTransaction.Action) -> Bool {
        guard let text = replies.popFirst() else {
            run.transcript.append("(waiting for a reply the script does not have)")
            return false
        }
        run.transcript.append("S: \(text)")
        action = transaction.replyReceived(reply(text + "\r\n"))
        return true
    }

    loop: while true {
        switch action {
        case .send(let commands, let bytes):
            if commands.isEmpty {
                run.transcript.append("C: \(String(buffer: bytes).dropLast())")  // CRLF is one Character
            } else {
                #expect(bytes == (try? SMTPClientCommand.encode(commands)), "bytes are the encoded commands")
                run.transcript += commands.map { "C: \($0)" }
            }
            if !nextReply(&action) { break loop }
        case .sendBody:
            run.transcript.append("C: <body>")
            if !nextReply(&action) { break loop }
        case .wait:
            if !nextReply(&action) { break loop }
        case .finished(let result):
            run.result = result
            break loop
        case .protocolError(let error):
            run.error = error
            break loop
        }
    }
    #expect(replies.isEmpty, "unused replies: \(Array(replies))")
    return run
}

/// One row of the table: a script, and what each recipient ends up with.
struct TransactionCase: CustomTestStringConvertible, Sendable {
    var name: String
    var pipelining: Bool
    var script: [String]
    var outcomes: [String]
    var reusable = true
    var testDescription: String { "\(name)\(pipelining ? " (pipelined)" : "")" }
}

@Suite("SMTP client transaction")
struct ClientTransactionTests {
    static let cases: [TransactionCase] = [
        TransactionCase(
            name: "all recipients accepted", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
                "C: RCPT TO:<bob@example.org>", "S: 250 2.1.5 Recipient OK",
                "C: RCPT TO:<carol@example.org>", "S: 250 2.1.5 Recipient OK",
                "C: DATA", "S: 354 Start mail input; end with <CRLF>.<CRLF>",
                "C: <body>", "S: 250 2.0.0 OK <1@example> [Hostname=SN4PR0401MB0001]",
            ],
            outcomes: ["bob: delivered 250 2.0.0", "carol: delivered 250 2.0.0"]),
        TransactionCase(
            name: "all recipients accepted", pipelining: true,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "C: RCPT TO:<bob@example.org>",
                "C: RCPT TO:<carol@example.org>", "C: DATA",
                "S: 250 2.1.0 Sender OK", "S: 250 2.1.5 Recipient OK", "S: 250 2.1.5 Recipient OK",
                "S: 354 Start mail input; end with <CRLF>.<CRLF>",
                "C: <body>", "S: 250 2.0.0 OK <1@example> [Hostname=SN4PR0401MB0001]",
            ],
            outcomes: ["bob: delivered 250 2.0.0", "carol: delivered 250 2.0.0"]),
        TransactionCase(
            name: "one recipient rejected 550", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
                "C: RCPT TO:<bob@example.org>", "S: 550 5.1.1 User unknown",
                "C: RCPT TO:<carol@example.org>", "S: 250 2.1.5 Recipient OK",
                "C: DATA", "S: 354 Go ahead",
                "C: <body>", "S: 250 2.0.0 Queued",
            ],
            outcomes: ["bob: permanent 550 5.1.1", "carol: delivered 250 2.0.0"]),
        TransactionCase(
            name: "one recipient rejected 550", pipelining: true,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "C: RCPT TO:<bob@example.org>",
                "C: RCPT TO:<carol@example.org>", "C: DATA",
                "S: 250 2.1.0 Sender OK", "S: 250 2.1.5 Recipient OK", "S: 550 5.1.1 User unknown",
                "S: 354 Go ahead",
                "C: <body>", "S: 250 2.0.0 Queued",
            ],
            outcomes: ["bob: delivered 250 2.0.0", "carol: permanent 550 5.1.1"]),
        TransactionCase(
            name: "a recipient deferred 452", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
                "C: RCPT TO:<bob@example.org>", "S: 250 2.1.5 Recipient OK",
                "C: RCPT TO:<carol@example.org>", "S: 452 4.5.3 Too many recipients",
                "C: DATA", "S: 354 Go ahead",
                "C: <body>", "S: 250 2.0.0 Queued",
            ],
            outcomes: ["bob: delivered 250 2.0.0", "carol: temporary 452 4.5.3"]),
        TransactionCase(
            name: "all recipients rejected: RSET, no body", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
                "C: RCPT TO:<bob@example.org>", "S: 550 5.1.1 User unknown",
                "C: RCPT TO:<carol@example.org>", "S: 550 5.7.64 TenantAttribution; Relay Access Denied",
                "C: RSET", "S: 250 2.0.0 Resetting",
            ],
            outcomes: ["bob: permanent 550 5.1.1", "carol: permanent 550 5.7.64"]),
        TransactionCase(
            name: "all recipients rejected: RSET, no body", pipelining: true,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "C: RCPT TO:<bob@example.org>",
                "C: RCPT TO:<carol@example.org>", "C: DATA",
                "S: 250 2.1.0 Sender OK", "S: 550 5.1.1 User unknown", "S: 451 4.7.500 Access denied, please try again later",
                "S: 554 5.5.1 No valid recipients",
                "C: RSET", "S: 250 2.0.0 Resetting",
            ],
            outcomes: ["bob: permanent 550 5.1.1", "carol: temporary 451 4.7.500"]),
        // RFC 2920 §3.1: DATA accepted although no recipient was: end the empty message with a lone dot.
        TransactionCase(
            name: "no recipient accepted but DATA got 354", pipelining: true,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "C: RCPT TO:<bob@example.org>",
                "C: RCPT TO:<carol@example.org>", "C: DATA",
                "S: 250 2.1.0 Sender OK", "S: 550 5.1.1 User unknown", "S: 550 5.1.1 User unknown",
                "S: 354 Go ahead",
                "C: .", "S: 554 5.5.1 No valid recipients",
            ],
            outcomes: ["bob: permanent 550 5.1.1", "carol: permanent 550 5.1.1"]),
        TransactionCase(
            name: "end of data 451: accepted recipients deferred", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
                "C: RCPT TO:<bob@example.org>", "S: 250 2.1.5 Recipient OK",
                "C: RCPT TO:<carol@example.org>", "S: 550 5.1.1 User unknown",
                "C: DATA", "S: 354 Go ahead",
                "C: <body>", "S: 451 4.7.500 Access denied, please try again later",
            ],
            outcomes: ["bob: temporary 451 4.7.500", "carol: permanent 550 5.1.1"]),
        TransactionCase(
            name: "end of data 451: accepted recipients deferred", pipelining: true,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "C: RCPT TO:<bob@example.org>",
                "C: RCPT TO:<carol@example.org>", "C: DATA",
                "S: 250 2.1.0 Sender OK", "S: 250 2.1.5 Recipient OK", "S: 250 2.1.5 Recipient OK",
                "S: 354 Go ahead",
                "C: <body>", "S: 451 4.7.500 Access denied, please try again later",
            ],
            outcomes: ["bob: temporary 451 4.7.500", "carol: temporary 451 4.7.500"]),
        TransactionCase(
            name: "end of data 554: accepted recipients failed", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
                "C: RCPT TO:<bob@example.org>", "S: 250 2.1.5 Recipient OK",
                "C: RCPT TO:<carol@example.org>", "S: 250 2.1.5 Recipient OK",
                "C: DATA", "S: 354 Go ahead",
                "C: <body>", "S: 554 5.2.252 SendAsDenied; alice@contoso.com not allowed to send as x@y",
            ],
            outcomes: ["bob: permanent 554 5.2.252", "carol: permanent 554 5.2.252"]),
        TransactionCase(
            name: "MAIL FROM rejected 530 5.7.57", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200",
                "S: 530 5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM",
            ],
            outcomes: ["bob: permanent 530 5.7.57", "carol: permanent 530 5.7.57"]),
        TransactionCase(
            name: "MAIL FROM rejected 530 5.7.57", pipelining: true,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "C: RCPT TO:<bob@example.org>",
                "C: RCPT TO:<carol@example.org>", "C: DATA",
                "S: 530 5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM",
                "S: 503 5.5.1 Need MAIL command", "S: 503 5.5.1 Need MAIL command", "S: 503 5.5.1 Need MAIL command",
            ],
            outcomes: ["bob: permanent 530 5.7.57", "carol: permanent 530 5.7.57"]),
        TransactionCase(
            name: "MAIL FROM deferred 432", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 432 4.3.2 Concurrent connections limit exceeded",
            ],
            outcomes: ["bob: temporary 432 4.3.2", "carol: temporary 432 4.3.2"]),
        TransactionCase(
            name: "DATA rejected: RSET", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
                "C: RCPT TO:<bob@example.org>", "S: 250 2.1.5 Recipient OK",
                "C: RCPT TO:<carol@example.org>", "S: 550 5.1.1 User unknown",
                "C: DATA", "S: 554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
                "C: RSET", "S: 250 2.0.0 Resetting",
            ],
            outcomes: ["bob: permanent 554 5.2.0", "carol: permanent 550 5.1.1"]),
        // RFC 5321 §3.8: 421 ends everything at once; the rest of the group's replies never come.
        TransactionCase(
            name: "421 in the middle of a pipelined group", pipelining: true,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "C: RCPT TO:<bob@example.org>",
                "C: RCPT TO:<carol@example.org>", "C: DATA",
                "S: 250 2.1.0 Sender OK", "S: 250 2.1.5 Recipient OK",
                "S: 421 4.3.2 Service not available, closing transmission channel",
            ],
            outcomes: ["bob: temporary 421 4.3.2", "carol: temporary 421 4.3.2"],
            reusable: false),
        TransactionCase(
            name: "421 at the end of data", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
                "C: RCPT TO:<bob@example.org>", "S: 550 5.1.1 User unknown",
                "C: RCPT TO:<carol@example.org>", "S: 250 2.1.5 Recipient OK",
                "C: DATA", "S: 354 Go ahead",
                "C: <body>", "S: 421 4.4.2 Connection dropped",
            ],
            outcomes: ["bob: permanent 550 5.1.1", "carol: temporary 421 4.4.2"],
            reusable: false),
        TransactionCase(
            name: "failed RSET leaves the connection unusable", pipelining: false,
            script: [
                "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
                "C: RCPT TO:<bob@example.org>", "S: 550 5.1.1 User unknown",
                "C: RCPT TO:<carol@example.org>", "S: 550 5.1.1 User unknown",
                "C: RSET", "S: 500 5.5.2 What?",
            ],
            outcomes: ["bob: permanent 550 5.1.1", "carol: permanent 550 5.1.1"],
            reusable: false),
    ]

    @Test(arguments: cases)
    func transcript(_ row: TransactionCase) {
        let run = run(row.script, capabilities: capabilities(pipelining: row.pipelining))
        #expect(run.error == nil)
        #expect(run.transcript == row.script)
        #expect(run.outcomes == row.outcomes)
        #expect(run.result?.connectionReusable == row.reusable)
    }

    @Test func successKeepsTheMessageReply() {
        let run = run(ClientTransactionTests.cases[0].script, capabilities: capabilities(pipelining: false))
        #expect(run.result?.messageReply?.text == "OK <1@example> [Hostname=SN4PR0401MB0001]")
        #expect(run.result?.delivered == [bob, carol])
    }

    @Test(arguments: [
        (["C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 334 What?"], "334 to MAIL"),
        ([
            "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
            "C: RCPT TO:<bob@example.org>", "S: 250 2.1.5 Recipient OK",
            "C: RCPT TO:<carol@example.org>", "S: 250 2.1.5 Recipient OK",
            "C: DATA", "S: 250 2.0.0 Sure",
        ], "250 to DATA"),
        ([
            "C: MAIL FROM:<alice@contoso.com> SIZE=1200", "S: 250 2.1.0 Sender OK",
            "C: RCPT TO:<bob@example.org>", "S: 354 Huh",
        ], "354 to RCPT"),
    ])
    func protocolErrors(_ script: [String], _ detail: String) {
        let run = run(script, capabilities: capabilities(pipelining: false))
        #expect(run.result == nil)
        #expect(run.error?.code == .unexpectedReply)
        #expect(run.error?.detail == detail)
    }

    @Test func replyAfterTheEndIsAProtocolError() {
        var transaction = SMTPClientTransaction(capabilities: capabilities(pipelining: false), envelope: envelope)
        _ = transaction.start()
        guard case .finished = transaction.replyReceived(reply("530 5.7.57 Not authenticated\r\n")) else {
            Issue.record("expected finished")
            return
        }
        guard case .protocolError(let error) = transaction.replyReceived(reply("250 OK\r\n")) else {
            Issue.record("expected a protocol error")
            return
        }
        #expect(error.code == .unexpectedReply)
    }

    /// Messages the server said it cannot take fail before a command is sent.
    @Test(arguments: [
        (["SIZE 1000", "8BITMIME", "SMTPUTF8"], SMTPClientEnvelope(sender: .mailbox(alice), recipients: [bob], size: 1200),
         "bob: permanent 552 5.3.4"),
        (["SIZE 35882577", "8BITMIME"],
         SMTPClientEnvelope(sender: .mailbox(alice), recipients: [SMTPMailbox(localPart: "j\u{F6}rg", domain: "example.org")]),
         "j\u{F6}rg: permanent 553 5.6.7"),
        (["SIZE 35882577", "8BITMIME"], SMTPClientEnvelope(sender: .mailbox(alice), recipients: [bob], requiresSMTPUTF8: true),
         "bob: permanent 553 5.6.7"),
        (["SIZE 35882577"], SMTPClientEnvelope(sender: .mailbox(alice), recipients: [bob], eightBit: true),
         "bob: permanent 554 5.6.3"),
        (["SIZE"], SMTPClientEnvelope(sender: .mailbox(SMTPMailbox(localPart: "a\r\nb", domain: "x.example")), recipients: [bob]),
         "bob: permanent 553 5.1.7"),
        (["SIZE"], SMTPClientEnvelope(sender: .null, recipients: [SMTPMailbox(localPart: "b\n", domain: "x.example")]),
         "b\n: permanent 553 5.1.3"),
    ])
    func refusedLocally(_ keywords: [String], _ envelope: SMTPClientEnvelope, _ outcome: String) {
        let run = run([], capabilities: capabilities(pipelining: true, keywords), envelope: envelope)
        #expect(run.transcript.isEmpty, "nothing is sent")
        #expect(run.outcomes == [outcome])
        #expect(run.result?.connectionReusable == true)
    }

    @Test(arguments: [
        (["SIZE 35882577", "8BITMIME", "SMTPUTF8"],
         SMTPClientEnvelope(sender: .mailbox(alice), recipients: [bob], size: 10, requiresSMTPUTF8: true, eightBit: true),
         "C: MAIL FROM:<alice@contoso.com> SIZE=10 BODY=8BITMIME SMTPUTF8"),
        (["8BITMIME", "SMTPUTF8"], SMTPClientEnvelope(sender: .mailbox(alice), recipients: [bob], size: 10),
         "C: MAIL FROM:<alice@contoso.com>"),
        (["SIZE"], SMTPClientEnvelope(sender: .null, recipients: [bob], size: 10),
         "C: MAIL FROM:<> SIZE=10"),
        (["SIZE 100", "SMTPUTF8"],
         SMTPClientEnvelope(sender: .mailbox(SMTPMailbox(localPart: "j\u{F6}rg", domain: "example.org")), recipients: [bob]),
         "C: MAIL FROM:<j\u{F6}rg@example.org> SMTPUTF8"),
    ])
    func mailParameters(_ keywords: [String], _ envelope: SMTPClientEnvelope, _ mailLine: String) {
        let run = run(
            [mailLine, "S: 550 5.7.1 Stop here"], capabilities: capabilities(pipelining: false, keywords), envelope: envelope)
        #expect(run.transcript.first == mailLine)
    }

    @Test func noRecipientsFinishesAtOnce() {
        var transaction = SMTPClientTransaction(
            capabilities: capabilities(pipelining: true), envelope: SMTPClientEnvelope(sender: .null, recipients: []))
        guard case .finished(let result) = transaction.start() else {
            Issue.record("expected finished")
            return
        }
        #expect(result.recipients.isEmpty)
    }
}
