import Foundation
import NIOCore
import SMTPCore

/// Every way to cut `bytes` into pieces: whole, byte by byte, at every single
/// position, and (for short inputs) at every pair of positions.
func clientChunkings(of bytes: [UInt8], pairsUpTo limit: Int = 160) -> [[[UInt8]]] {
    var result: [[[UInt8]]] = [[bytes], bytes.map { [$0] }]
    guard bytes.count > 1 else { return result }
    for i in 1..<bytes.count {
        result.append([Array(bytes[..<i]), Array(bytes[i...])])
        if bytes.count <= limit {
            for j in (i + 1)..<bytes.count {
                result.append([Array(bytes[..<i]), Array(bytes[i..<j]), Array(bytes[j...])])
            }
        }
    }
    return result
}

/// Decodes `text` fed as the given chunks; returns the replies and the error, if any.
func decodeReplies(
    _ chunks: [[UInt8]], configuration: SMTPReplyDecoder.Configuration = .init()
) -> (replies: [SMTPReply], error: SMTPClientError?) {
    var decoder = SMTPReplyDecoder(configuration: configuration)
    var buffer = ByteBuffer()
    var replies: [SMTPReply] = []
    do {
        for chunk in chunks {
            buffer.writeBytes(chunk)
            while let reply = try decoder.next(&buffer) { replies.append(reply) }
        }
    } catch {
        return (replies, error)
    }
    return (replies, nil)
}

/// Parses one reply from its wire text (`"250 2.0.0 Ok\r\n"`); the text must hold exactly one.
func reply(_ text: String) -> SMTPReply {
    let (replies, error) = decodeReplies([Array(text.utf8)])
    precondition(error == nil && replies.count == 1, "bad fixture reply \(text.debugDescription)")
    return replies[0]
}

/// `text` with `\n` line ends turned into CRLF, for readable multi-line fixtures.
func crlf(_ text: String) -> String {
    text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n")
}

/// The M365 submission endpoint's EHLO reply before STARTTLS (M365.md).
let m365EHLOBeforeTLS = crlf("""
    250-SN4PR0401CA0001.outlook.office365.com Hello [203.0.113.7]
    250-SIZE 157286400
    250-PIPELINING
    250-DSN
    250-ENHANCEDSTATUSCODES
    250-STARTTLS
    250-8BITMIME
    250-BINARYMIME
    250-CHUNKING
    250 SMTPUTF8

    """)

/// After STARTTLS the list carries `AUTH LOGIN XOAUTH2` instead of `STARTTLS`.
let m365EHLOAfterTLS = crlf("""
    250-SN4PR0401CA0001.outlook.office365.com Hello [203.0.113.7]
    250-SIZE 157286400
    250-PIPELINING
    250-DSN
    250-ENHANCEDSTATUSCODES
    250-AUTH LOGIN XOAUTH2
    250-8BITMIME
    250-BINARYMIME
    250-CHUNKING
    250 SMTPUTF8

    """)
