import Crypto

/// SHA-256 over the relaxed canonical body, fed chunk by chunk: the `bh=` tag.
///
/// Memory stays bounded by the largest chunk: canonical bytes are hashed as
/// they are produced, and only the canonicaliser's few flags carry over.
/// - SeeAlso: RFC 6376 §3.7 (body hash), §3.4.4
public struct DKIMBodyHasher: Sendable {
    private var canonicalizer = DKIMRelaxedBodyCanonicalizer()
    private var hash = SHA256()
    private var scratch: [UInt8] = []
    /// Octets of canonical body hashed so far.
    public private(set) var canonicalLength = 0

    public init() {}

    public mutating func update<Bytes: Sequence<UInt8>>(_ chunk: Bytes) {
        scratch.removeAll(keepingCapacity: true)
        canonicalizer.update(chunk, into: &scratch)
        consumeScratch()
    }

    /// The SHA-256 digest of the canonical body.
    public mutating func finalize() -> [UInt8] {
        scratch.removeAll(keepingCapacity: true)
        canonicalizer.finish(into: &scratch)
        consumeScratch()
        return Array(hash.finalize())
    }

    private mutating func consumeScratch() {
        guard !scratch.isEmpty else { return }
        hash.update(data: scratch)
        canonicalLength += scratch.count
    }
}
