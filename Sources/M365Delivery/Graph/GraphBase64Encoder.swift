import Foundation
import NIOCore

/// Base64 in pieces: bytes go in chunk by chunk, text comes out as soon as
/// three octets are there, so a message is never held whole twice.
///
/// The output equals base64 of the concatenated input (one line, padded).
/// - SeeAlso: RFC 4648 §4
struct GraphBase64Encoder {
    private var carry: [UInt8] = []

    /// Octets of base64 for `count` octets of input.
    static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    mutating func append(_ bytes: some Collection<UInt8>, into output: inout ByteBuffer) {
        carry.append(contentsOf: bytes)
        let usable = carry.count / 3 * 3
        guard usable > 0 else { return }
        output.writeString(Data(carry[..<usable]).base64EncodedString())
        carry.removeFirst(usable)
    }

    mutating func finish(into output: inout ByteBuffer) {
        if !carry.isEmpty { output.writeString(Data(carry).base64EncodedString()) }
        carry = []
    }
}
