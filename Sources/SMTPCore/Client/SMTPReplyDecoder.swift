import NIOCore

/// Frames and parses the replies of an SMTP server, multi-line ones included.
///
/// The core is ``next(_:)``, a plain function over a `ByteBuffer` that
/// returns `nil` until a whole reply is there; the `ByteToMessageDecoder`
/// conformance only forwards to it, so that tests need no channel.
///
/// **Line ends.** CRLF always ends a line. A bare LF also ends a *reply* line
/// by default (``Configuration-swift.struct/acceptsBareLineFeed``), unlike the
/// server side, which refuses it (STYLE.md idiom 2). The reason for the
/// difference: refusing bare LF on the server side defends against SMTP
/// smuggling, where two receivers disagree about where a message ends. Reply
/// bytes are read by nobody but this decoder and are never forwarded as
/// framing, so no second reader can disagree with it, while refusing a
/// sloppy upstream's LF-only reply would fail deliveries for no safety gain
/// (Postfix's SMTP client accepts them for the same reason). A bare CR inside
/// a line is still refused, as are other control characters except HT.
///
/// **Enhanced status codes** (`250 2.1.5 Ok`) are split off the text when the
/// first line starts with one whose class matches the reply's first digit;
/// the same code is stripped from the following lines, which is how
/// ``SMTPReply/encode(into:)`` repeats it.
///
/// After it throws, the decoder keeps throwing the same error: close the connection.
/// - SeeAlso: RFC 5321 §4.2 (reply syntax), §4.5.3.1.5 (reply line length), RFC 2034 §4
public struct SMTPReplyDecoder: Sendable {
    /// Limits of the reply decoder.
    public struct Configuration: Hashable, Sendable {
        /// Longest reply line in octets, code and line end included.
        ///
        /// RFC 5321 §4.5.3.1.5 limits reply lines to 512 octets, but real servers
        /// (Microsoft 365 diagnostics among them) send longer ones; 1000 is the
        /// text line limit of §4.5.3.1.6 and still bounds memory.
        public var maximumLineLength = 1000
        /// Most lines in one multi-line reply. RFC 5321 sets no number; an EHLO
        /// reply has about 15. Bounds memory against a server that never ends a reply.
        public var maximumLineCount = 256
        /// Whether a bare LF ends a reply line; see the type's documentation.
        public var acceptsBareLineFeed = true

        public init() {}
    }

    public var configuration: Configuration

    private struct Partial: Sendable {
        var code: Int
        var enhanced: SMTPEnhancedStatus?
        var lines: [String]
    }

    private var partial: Partial?
    private var failure: SMTPClientError?

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
    }

    /// Whether lines of an unfinished multi-line reply have been consumed.
    public var hasPartialReply: Bool { partial != nil }

    /// Consumes bytes from `buffer` and returns the next complete reply, or nil
    /// when more bytes are needed. Consumed lines are removed from `buffer`;
    /// an incomplete line is left in it.
    public mutating func next(_ buffer: inout ByteBuffer) throws(SMTPClientError) -> SMTPReply? {
        if let failure { throw failure }
        do {
            while let line = try readLine(&buffer) {
                if let reply = try parse(line) { return reply }
            }
            return nil
        } catch {
            failure = error
            throw error
        }
    }

    private static let cr = UInt8(ascii: "\r")
    private static let lf = UInt8(ascii: "\n")

    private func readLine(_ buffer: inout ByteBuffer) throws(SMTPClientError) -> ArraySlice<UInt8>? {
        let view = buffer.readableBytesView
        let limit = configuration.maximumLineLength
        guard let lf = view.prefix(limit).firstIndex(of: Self.lf) else {
            if view.count >= limit {
                throw SMTPClientError(.lineTooLong, detail: "no line end within \(limit) octets")
            }
            return nil
        }
        var end = lf
        if end > view.startIndex, view[end - 1] == Self.cr {
            end -= 1
        } else if !configuration.acceptsBareLineFeed {
            throw SMTPClientError(.bareLineFeed)
        }
        let line = Array(view[view.startIndex..<end])[...]
        buffer.moveReaderIndex(forwardBy: lf - view.startIndex + 1)
        return line
    }

    private mutating func parse(_ line: ArraySlice<UInt8>) throws(SMTPClientError) -> SMTPReply? {
        guard line.count >= 3 else { throw malformed(line, "shorter than a reply code") }
        let d0 = line[line.startIndex], d1 = line[line.startIndex + 1], d2 = line[line.startIndex + 2]
        guard (UInt8(ascii: "2")...UInt8(ascii: "5")).contains(d0),
              (UInt8(ascii: "0")...UInt8(ascii: "5")).contains(d1),
              (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(d2)
        else { throw malformed(line, "invalid reply code") }
        let code = Int(d0 - 48) * 100 + Int(d1 - 48) * 10 + Int(d2 - 48)

        let isLast: Bool
        var text = line.dropFirst(3)
        if let separator = text.first {
            switch separator {
            case UInt8(ascii: " "): isLast = true
            case UInt8(ascii: "-"): isLast = false
            default: throw malformed(line, "invalid separator after the reply code")
            }
            text = text.dropFirst()
        } else {
            isLast = true  // `250<CRLF>`: RFC 5321 §4.2 makes the text optional.
        }
        for byte in text where (byte < 0x20 && byte != 0x09) || byte == 0x7F {
            throw malformed(line, "control character in reply text")
        }
        let string = String(decoding: text, as: UTF8.self)

        var current: Partial
        if let partial {
            guard partial.code == code else {
                throw SMTPClientError(.inconsistentReplyCode, detail: "\(partial.code) then \(code)")
            }
            current = partial
            current.lines.append(Self.strip(current.enhanced, from: string))
        } else {
            let (enhanced, rest) = Self.splitEnhanced(string, code: code)
            current = Partial(code: code, enhanced: enhanced, lines: [rest])
        }

        if isLast {
            partial = nil
            return SMTPReply(current.code, current.enhanced, current.lines)
        }
        guard current.lines.count < configuration.maximumLineCount else {
            throw SMTPClientError(.tooManyReplyLines, detail: "more than \(configuration.maximumLineCount) lines")
        }
        partial = current
        return nil
    }

    /// Splits `2.1.5 Ok` into the status and `Ok` when the class matches the reply code.
    static func splitEnhanced(_ text: String, code: Int) -> (SMTPEnhancedStatus?, String) {
        let token: Substring
        let rest: Substring
        if let space = text.firstIndex(of: " ") {
            token = text[..<space]
            rest = text[text.index(after: space)...]
        } else {
            token = text[...]
            rest = ""
        }
        guard !token.isEmpty, token.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: ".") }),
              let status = SMTPEnhancedStatus(parsing: token),
              status.statusClass == code / 100
        else { return (nil, text) }
        return (status, String(rest))
    }

    private static func strip(_ enhanced: SMTPEnhancedStatus?, from text: String) -> String {
        guard let enhanced else { return text }
        let prefix = enhanced.description
        if text == prefix { return "" }
        if text.hasPrefix(prefix + " ") { return String(text.dropFirst(prefix.count + 1)) }
        return text
    }

    private func malformed(_ line: ArraySlice<UInt8>, _ why: String) -> SMTPClientError {
        let shown = String(decoding: line.prefix(64), as: UTF8.self)
        return SMTPClientError(.malformedReply, detail: "\(why): \(shown.debugDescription)")
    }
}

extension SMTPReplyDecoder: ByteToMessageDecoder {
    public typealias InboundOut = SMTPReply

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let reply = try next(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(reply))
        return .continue
    }

    /// Decodes what is left at end of input or when the handler is removed.
    ///
    /// Bytes that do not make a whole reply are an error in both cases: at EOF
    /// the server hung up mid-reply; on removal (seenEOF false) they arrived
    /// after the last reply the client waited for. The second case is how the
    /// channel handler detects plaintext injected after `220` to STARTTLS:
    /// remove this decoder (and add a fresh one above the TLS handler) instead
    /// of keeping it across the handshake.
    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        if let reply = try next(&buffer) {
            context.fireChannelRead(Self.wrapInboundOut(reply))
            return .continue
        }
        if hasPartialReply || buffer.readableBytes > 0 {
            let error = SMTPClientError(
                .truncatedReply,
                detail: seenEOF ? "connection closed mid-reply" : "unread bytes when the decoder was removed")
            failure = error
            buffer.moveReaderIndex(to: buffer.writerIndex)
            throw error
        }
        return .needMoreData
    }
}
