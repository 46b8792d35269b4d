import NIOCore

/// Streams message content into the DATA phase: dot-stuffs it and ends it with `CRLF.CRLF`.
///
/// Content arrives in chunks with arbitrary boundaries; the stuffer remembers
/// across calls whether the next byte starts a line and whether the last byte
/// was a CR, so a `.` at the start of a chunk after a chunk ending in CRLF, or
/// a CRLF split between two chunks, is handled as if the content came whole.
///
/// Only CRLF ends a line. The relay stores CRLF content (ingress repairs or
/// refuses bare LF), so a bare LF here is a body byte, and a `.` after it is
/// not stuffed: a receiver that honoured bare LF as a line end would then see
/// a line `.`, which is exactly the ambiguity SMTP smuggling exploits, and is
/// why the content must not contain bare LFs in the first place.
/// - SeeAlso: RFC 5321 §4.5.2 (transparency), §4.1.1.4 (end of data)
public struct SMTPDotStuffer: Sendable {
    private var atLineStart = true
    private var lastWasCR = false
    /// Octets of content consumed so far (before stuffing).
    public private(set) var contentLength = 0

    public init() {}

    /// Appends `chunk`, dot-stuffed, to `output`.
    public mutating func stuff(_ chunk: ByteBuffer, into output: inout ByteBuffer) {
        contentLength += chunk.readableBytes
        var atLineStart = self.atLineStart
        var lastWasCR = self.lastWasCR
        chunk.withUnsafeReadableBytes { bytes in
            var segmentStart = 0
            for index in 0..<bytes.count {
                let byte = bytes[index]
                if atLineStart && byte == UInt8(ascii: ".") {
                    // Write up to and including this dot, then the extra one.
                    output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[segmentStart...index]))
                    output.writeInteger(UInt8(ascii: "."))
                    segmentStart = index + 1
                }
                atLineStart = lastWasCR && byte == UInt8(ascii: "\n")
                lastWasCR = byte == UInt8(ascii: "\r")
            }
            if segmentStart < bytes.count {
                output.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[segmentStart...]))
            }
        }
        self.atLineStart = atLineStart
        self.lastWasCR = lastWasCR
    }

    /// Writes the end of data: CRLF if the content did not end with one, then `.` CRLF.
    ///
    /// Empty content yields just `.` CRLF (an empty message).
    public mutating func finish(into output: inout ByteBuffer) {
        if !atLineStart { output.writeString("\r\n") }
        output.writeString(".\r\n")
        atLineStart = true
        lastWasCR = false
    }

    /// Stuffs a whole message in one go, terminator included.
    public static func stuffed(_ content: ByteBuffer) -> ByteBuffer {
        var stuffer = SMTPDotStuffer()
        var output = ByteBuffer()
        output.reserveCapacity(content.readableBytes + 5)
        stuffer.stuff(content, into: &output)
        stuffer.finish(into: &output)
        return output
    }
}
