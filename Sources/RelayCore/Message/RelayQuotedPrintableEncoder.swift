/// Encodes a text body as quoted-printable, chunk by chunk.
///
/// Used when a device sends a text line longer than SMTP allows (998
/// octets): quoted-printable's soft line breaks make every line short while
/// the decoded text stays the same. CRLF in the input is a hard line break
/// and stays CRLF. State carries across chunks, so any chunking gives the
/// same output.
/// - SeeAlso: RFC 2045 §6.7
public struct RelayQuotedPrintableEncoder: Sendable {
    /// Encoded octets per line, the soft-break `=` included (RFC 2045 §6.7 rule 5).
    public static let maximumLineLength = 76

    private var lineLength = 0
    /// A space or tab whose encoding depends on whether the line ends after it (rule 3).
    private var pendingWhitespace: UInt8?
    private var pendingCR = false

    public init() {}

    public mutating func encode(_ input: some Sequence<UInt8>) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(input.underestimatedCount + input.underestimatedCount / 8 + 8)
        for byte in input { encode(byte, into: &output) }
        return output
    }

    /// What is still held back at the end of the input.
    public mutating func finish() -> [UInt8] {
        var output: [UInt8] = []
        if let space = pendingWhitespace {
            pendingWhitespace = nil
            emit(Self.escaped(space), into: &output)
        }
        if pendingCR {
            pendingCR = false
            emit(Self.escaped(13), into: &output)
        }
        return output
    }

    private mutating func encode(_ byte: UInt8, into output: inout [UInt8]) {
        if pendingCR {
            pendingCR = false
            if byte == 10 {
                hardBreak(into: &output)
                return
            }
            // A CR that does not start CRLF is data, not a line end.
            flushWhitespace(into: &output)
            emit(Self.escaped(13), into: &output)
        }
        switch byte {
        case 13:
            pendingCR = true
        case 10:
            // A bare LF never gets this far (the framer refuses it); treat it as a line end.
            hardBreak(into: &output)
        case 32, 9:
            flushWhitespace(into: &output)
            pendingWhitespace = byte
        default:
            flushWhitespace(into: &output)
            if byte >= 33, byte <= 126, byte != UInt8(ascii: "=") {
                emit([byte], into: &output)
            } else {
                emit(Self.escaped(byte), into: &output)
            }
        }
    }

    /// Whitespace at the end of a line must be encoded; anywhere else it stays literal.
    private mutating func hardBreak(into output: inout [UInt8]) {
        if let space = pendingWhitespace {
            pendingWhitespace = nil
            emit(Self.escaped(space), into: &output)
        }
        output += [13, 10]
        lineLength = 0
    }

    private mutating func flushWhitespace(into output: inout [UInt8]) {
        if let space = pendingWhitespace {
            pendingWhitespace = nil
            emit([space], into: &output)
        }
    }

    private mutating func emit(_ token: [UInt8], into output: inout [UInt8]) {
        // Leave room for the `=` of a soft break.
        if lineLength + token.count > Self.maximumLineLength - 1 {
            output += [UInt8(ascii: "="), 13, 10]
            lineLength = 0
        }
        output += token
        lineLength += token.count
    }

    static func escaped(_ byte: UInt8) -> [UInt8] {
        let hex = Array("0123456789ABCDEF".utf8)
        return [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
    }
}

/// Finds the longest line of a byte stream, chunk by chunk.
///
/// A line's length excludes its CRLF, as RFC 5321's 998-octet rule counts it.
/// - SeeAlso: RFC 5321 §4.5.3.1.6, RFC 5322 §2.1.1
public struct RelayLineLengthTracker: Hashable, Sendable {
    public private(set) var longestLine = 0
    private var current = 0
    private var lastWasCR = false

    public init() {}

    /// Whether a line so far (complete or not) is longer than `limit`.
    public func exceeds(_ limit: Int) -> Bool { longestLine > limit }

    public mutating func scan(_ bytes: some Sequence<UInt8>) {
        var current = self.current, lastWasCR = self.lastWasCR, longest = longestLine
        for byte in bytes {
            if byte == 10 {
                current = 0
                lastWasCR = false
                continue
            }
            current += 1
            lastWasCR = byte == 13
            // A CR may yet turn out to be the start of CRLF: not counted until it does not.
            let length = lastWasCR ? current - 1 : current
            if length > longest { longest = length }
        }
        self.current = current
        self.lastWasCR = lastWasCR
        longestLine = longest
    }
}
