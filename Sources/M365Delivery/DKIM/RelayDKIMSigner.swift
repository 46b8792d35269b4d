import Foundation
import Logging
import NIOCore
import RelayCore
import RelayStorage
import Synchronization

/// Signs queued messages at delivery with the keys of their sender's domain.
///
/// At delivery rather than at ingress so that what is signed is exactly
/// what leaves (after sender rewriting and repair), and so that a key
/// change applies to mail already queued. The domain is the header From's,
/// else the envelope sender's; a domain without a key of its own takes its
/// nearest parent's (DMARC's relaxed alignment accepts `d=` of a parent).
/// A domain with several keys (an RSA and an Ed25519 selector) gets one
/// signature per key.
///
/// Signing needs the body hash before the first byte is sent, so the
/// content is read twice: once here to hash it, streamed in chunks, and
/// once by the transport, behind the signature fields.
/// - SeeAlso: RFC 6376 §5, RFC 8463
public final class RelayDKIMSigner: Sendable {
    /// Signers by lower-cased domain, in configuration order.
    private let signers: [String: [DKIMSigner]]
    private let logger: Logger
    /// A header section larger than this is not signed (the message is sent unsigned).
    public let maximumHeaderSection: Int
    /// Chunk size of the hashing pass.
    static let chunkSize = 64 * 1024

    public init(signers: [DKIMSigner], maximumHeaderSection: Int = 1024 * 1024, logger: Logger) {
        self.signers = Dictionary(grouping: signers, by: { $0.domain.lowercased() })
        self.maximumHeaderSection = maximumHeaderSection
        self.logger = logger
    }

    /// The signers for `domain`: its own, else those of its nearest parent domain.
    public func signers(forDomain domain: String) -> [DKIMSigner] {
        var candidate = Substring(domain.lowercased())
        while candidate.hasSuffix(".") { candidate = candidate.dropLast() }
        while !candidate.isEmpty {
            if let found = signers[String(candidate)] { return found }
            guard let dot = candidate.firstIndex(of: ".") else { break }
            candidate = candidate[candidate.index(after: dot)...]
        }
        return []
    }

    /// `content` ready to send: behind its `DKIM-Signature` fields when the
    /// message's domain has a key, else `content` itself.
    ///
    /// `open` opens the same content again for the hashing pass, which reads
    /// it to the end and closes it. Throws only what reading throws; a
    /// message that cannot be signed (no header section within
    /// ``maximumHeaderSection``) is sent unsigned, with a warning.
    public func signing(
        _ content: any RelayContentReader, of message: RelayQueuedMessage, open: () throws -> any RelayContentReader, now: Date
    ) throws -> any RelayContentReader {
        let hashing = try open()
        defer { hashing.close() }
        guard let fields = try signatureFields(reading: hashing, envelopeSender: message.envelope.sender, now: now, queueID: "\(message.id)") else {
            return content
        }
        return RelayDKIMSignedContent(prefix: fields, content: content)
    }

    /// The `DKIM-Signature` fields for the message `content` holds, reading
    /// it once to the end; nil when its domain has no key or it cannot be signed.
    public func signatureFields(reading content: any RelayContentReader, envelopeSender: String, now: Date, queueID: String = "") throws -> ByteBuffer? {
        // The header section first: it names the domain.
        var prefix: [UInt8] = []
        var atEnd = false
        var split: (fields: [[UInt8]], bodyStart: Int)?
        while split == nil, !atEnd {
            if var chunk = try content.read(maxLength: Self.chunkSize) {
                prefix += chunk.readBytes(length: chunk.readableBytes) ?? []
            } else {
                atEnd = true
            }
            // Only look once the empty line may be there (cheap check before a parse).
            if atEnd || Self.containsHeaderEnd(prefix) {
                split = DKIMSigner.headerFields(of: prefix, atEnd: atEnd)
            }
            if split == nil, prefix.count > maximumHeaderSection {
                logger.warning("Message sent without DKIM signature: no header section within the limit", metadata: ["queue_id": "\(queueID)", "limit": "\(maximumHeaderSection)"])
                return nil
            }
        }
        guard let (fields, bodyStart) = split else {
            logger.warning("Message sent without DKIM signature: no header section", metadata: ["queue_id": "\(queueID)"])
            return nil
        }
        let domain = Self.fromDomain(fields: fields) ?? Self.domain(of: envelopeSender)
        guard let domain else { return nil }
        let chosen = signers(forDomain: domain)
        guard !chosen.isEmpty else { return nil }

        // One body hash serves every signer: all use relaxed canonicalisation and SHA-256.
        var hasher = DKIMBodyHasher()
        hasher.update(prefix[bodyStart...])
        prefix = []
        while !atEnd {
            if let chunk = try content.read(maxLength: Self.chunkSize) {
                hasher.update(chunk.readableBytesView)
            } else {
                atEnd = true
            }
        }
        let bodyHash = hasher.finalize()
        var output = ByteBuffer()
        let timestamp = Int(now.timeIntervalSince1970)
        for signer in chosen {
            do {
                output.writeString(try signer.signatureField(fields: fields, bodyHash: bodyHash, timestamp: timestamp))
            } catch {
                logger.error("DKIM signature could not be made", metadata: ["queue_id": "\(queueID)", "domain": "\(signer.domain)", "selector": "\(signer.selector)", "error": "\(error)"])
            }
        }
        if output.readableBytes > 0 {
            logger.debug("Message signed", metadata: ["queue_id": "\(queueID)", "domain": "\(domain)", "signatures": "\(chosen.count)"])
        }
        return output.readableBytes > 0 ? output : nil
    }

    /// The domain of the first address in the header From, if any.
    static func fromDomain(fields: [[UInt8]]) -> String? {
        let from = fields.first { DKIMRelaxedHeader.name(of: $0) == "from" }
        guard let from else { return nil }
        let section = RelayHeaderSection.parse(from + [13, 10])
        return section.addresses("From").lazy.compactMap { domain(of: $0.address) }.first
    }

    /// The part after the last `@`, lower-cased; nil for none or an empty one.
    public static func domain(of address: String) -> String? {
        guard let at = address.lastIndex(of: "@") else { return nil }
        let domain = address[address.index(after: at)...].lowercased()
        return domain.isEmpty ? nil : domain
    }

    static func containsHeaderEnd(_ bytes: [UInt8]) -> Bool {
        if bytes.starts(with: [13, 10]) || bytes.starts(with: [10]) { return true }
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 10, bytes[index + 1] == 10 || (bytes[index + 1] == 13 && index + 2 < bytes.count && bytes[index + 2] == 10) {
                return true
            }
            index += 1
        }
        return false
    }
}

/// The signature fields, then the stored content: what a transport reads
/// for a signed message. One caller at a time, like every content reader.
final class RelayDKIMSignedContent: RelayContentReader {
    private let prefix: Mutex<ByteBuffer>
    private let content: any RelayContentReader

    init(prefix: ByteBuffer, content: any RelayContentReader) {
        self.prefix = Mutex(prefix)
        self.content = content
    }

    func read(maxLength: Int) throws -> ByteBuffer? {
        let head = prefix.withLock { buffer -> ByteBuffer? in
            guard buffer.readableBytes > 0 else { return nil }
            return buffer.readSlice(length: min(maxLength, buffer.readableBytes))
        }
        if let head { return head }
        return try content.read(maxLength: maxLength)
    }

    func close() {
        prefix.withLock { $0.clear() }
        content.close()
    }
}
