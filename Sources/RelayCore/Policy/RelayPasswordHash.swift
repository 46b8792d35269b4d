import Crypto
import Foundation
import _CryptoExtras

/// A salted scrypt password hash in PHC string format, as `hash-password`
/// prints it and `password_hash_file` / `password_hash_env` hold it:
///
///     $scrypt$ln=15,r=8,p=1$<salt>$<hash>
///
/// - `ln`: log2 of scrypt's cost N (15: N = 32768), `r`: block size,
///   `p`: parallelism, written in this order, decimal, no leading zeros;
/// - `<salt>` and `<hash>`: standard base64 (`A-Z a-z 0-9 + /`) without `=`
///   padding, as the PHC format specifies; `hash-password` writes a 16-byte
///   salt and a 32-byte hash.
///
/// The defaults (ln=15, r=8, p=1: 32 MiB and roughly 0.1 s per check) are
/// OWASP's scrypt recommendation: memory-hard, so that a stolen hash file
/// is expensive to attack with GPUs. Verification is CPU-heavy: callers run
/// ``verify(_:)`` off the event loops and off the Swift cooperative pool.
/// - SeeAlso: RFC 7914 (scrypt), https://github.com/P-H-C/phc-string-format
public struct RelayPasswordHash: Sendable, Hashable, CustomStringConvertible {
    public struct Parameters: Sendable, Hashable {
        /// log2 of N, the CPU/memory cost.
        public var logN: Int
        /// r, the block size.
        public var blockSize: Int
        /// p, the parallelism.
        public var parallelism: Int

        public init(logN: Int, blockSize: Int, parallelism: Int) {
            self.logN = logN
            self.blockSize = blockSize
            self.parallelism = parallelism
        }

        /// ln=15, r=8, p=1 (OWASP Password Storage Cheat Sheet, scrypt).
        public static let recommended = Parameters(logN: 15, blockSize: 8, parallelism: 1)

        /// Octets of memory one derivation needs (128 · r · N).
        public var memory: Int { 128 * blockSize << logN }

        /// Bounds for hashes read from configuration: a hash file must not be
        /// able to make one login take a gigabyte or a minute. r ≤ 16 also keeps
        /// within the memory limit swift-crypto hands BoringSSL for p = 1.
        var isAcceptable: Bool {
            (1...20).contains(logN) && (1...16).contains(blockSize) && (1...4).contains(parallelism)
                && memory * parallelism <= 256 * 1_048_576
        }
    }

    public var parameters: Parameters
    public var salt: [UInt8]
    public var hash: [UInt8]

    public static let saltLength = 16
    public static let hashLength = 32

    public init(parameters: Parameters, salt: [UInt8], hash: [UInt8]) {
        self.parameters = parameters
        self.salt = salt
        self.hash = hash
    }

    /// Hashes `password` with a fresh random salt (or `salt`, for known-answer tests).
    public static func make(
        password: some Collection<UInt8>, salt: [UInt8]? = nil, parameters: Parameters = .recommended
    ) throws(RelayPasswordHashError) -> RelayPasswordHash {
        guard !password.isEmpty else { throw RelayPasswordHashError(.emptyPassword) }
        guard parameters.isAcceptable else { throw RelayPasswordHashError(.unsupportedParameters) }
        let salt = salt ?? randomSalt()
        guard !salt.isEmpty else { throw RelayPasswordHashError(.malformed) }
        let hash = try derive(password: Array(password), salt: salt, parameters: parameters, length: hashLength)
        return RelayPasswordHash(parameters: parameters, salt: salt, hash: hash)
    }

    /// Parses the PHC string (surrounding whitespace, such as a file's
    /// trailing newline, is ignored).
    public init(parsing text: String) throws(RelayPasswordHashError) {
        let fields = text.trimmingCharacters(in: .whitespacesAndNewlines)
            .split(separator: "$", omittingEmptySubsequences: false)
        // "", "scrypt", params, salt, hash
        guard fields.count >= 3, fields[0].isEmpty else { throw RelayPasswordHashError(.malformed) }
        guard fields[1] == "scrypt" else { throw RelayPasswordHashError(.unsupportedAlgorithm) }
        guard fields.count == 5 else { throw RelayPasswordHashError(.malformed) }
        let pairs = fields[2].split(separator: ",", omittingEmptySubsequences: false)
        guard pairs.count == 3 else { throw RelayPasswordHashError(.malformed) }
        var values: [Int] = []
        for (pair, name) in zip(pairs, ["ln", "r", "p"]) {
            let parts = pair.split(separator: "=", omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0] == name, let value = Self.decimal(parts[1]) else {
                throw RelayPasswordHashError(.malformed)
            }
            values.append(value)
        }
        let parameters = Parameters(logN: values[0], blockSize: values[1], parallelism: values[2])
        guard parameters.isAcceptable else { throw RelayPasswordHashError(.unsupportedParameters) }
        guard let salt = Self.base64Decode(fields[3]), (8...64).contains(salt.count),
              let hash = Self.base64Decode(fields[4]), (16...64).contains(hash.count)
        else { throw RelayPasswordHashError(.malformed) }
        self.init(parameters: parameters, salt: salt, hash: hash)
    }

    /// The PHC string, for the configuration.
    public var encoded: String {
        "$scrypt$ln=\(parameters.logN),r=\(parameters.blockSize),p=\(parameters.parallelism)$"
            + Self.base64Encode(salt) + "$" + Self.base64Encode(hash)
    }

    /// The parameters only: a hash is not a password, but it is offline-attackable.
    public var description: String {
        "RelayPasswordHash(scrypt ln=\(parameters.logN),r=\(parameters.blockSize),p=\(parameters.parallelism), <redacted>)"
    }

    /// Whether `password` is the one hashed. CPU- and memory-heavy (see the
    /// type's documentation); the final comparison takes the same time
    /// wherever the first differing octet is. An empty password never matches.
    public func verify(_ password: some Collection<UInt8>) -> Bool {
        guard !password.isEmpty,
              let derived = try? Self.derive(password: Array(password), salt: salt, parameters: parameters, length: hash.count)
        else { return false }
        return Self.constantTimeEquals(derived, hash)
    }

    /// Raw scrypt (RFC 7914 §6), exposed for the RFC's test vectors.
    public static func derive(password: [UInt8], salt: [UInt8], parameters: Parameters, length: Int) throws(RelayPasswordHashError) -> [UInt8] {
        // swift-crypto force-unwraps the buffers' base addresses: empty inputs would trap.
        guard !password.isEmpty, !salt.isEmpty, length > 0 else { throw RelayPasswordHashError(.emptyPassword) }
        do {
            let key = try KDF.Scrypt.deriveKey(
                from: password, salt: salt, outputByteCount: length, rounds: 1 << parameters.logN,
                blockSize: parameters.blockSize, parallelism: parameters.parallelism)
            return key.withUnsafeBytes { Array($0) }
        } catch {
            throw RelayPasswordHashError(.derivationFailed)
        }
    }

    /// Equal length and content, in time that depends on the length only.
    public static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func randomSalt() -> [UInt8] {
        // SystemRandomNumberGenerator is the OS CSPRNG (getrandom on Linux).
        var generator = SystemRandomNumberGenerator()
        return (0..<saltLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    private static func decimal(_ text: Substring) -> Int? {
        guard (1...4).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              text.utf8.count == 1 || text.utf8.first != 0x30 else { return nil }
        return Int(text)
    }

    static func base64Encode(_ bytes: [UInt8]) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    static func base64Decode(_ text: Substring) -> [UInt8]? {
        guard !text.isEmpty, text.utf8.count % 4 != 1, !text.contains("=") else { return nil }
        let padded = String(text) + String(repeating: "=", count: (4 - text.utf8.count % 4) % 4)
        return Data(base64Encoded: padded).map(Array.init)
    }
}

/// Why a password hash could not be made or read. The description never
/// holds the hash or the password.
public struct RelayPasswordHashError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        case malformed = "not a PHC string of the form $scrypt$ln=15,r=8,p=1$<salt>$<hash>"
        case unsupportedAlgorithm = "only $scrypt$ hashes are supported; make one with `m365-relay hash-password`"
        case unsupportedParameters = "scrypt parameters out of range (ln 1-20, r 1-16, p 1-4, at most 256 MiB)"
        case emptyPassword = "the password is empty"
        case derivationFailed = "scrypt failed"
    }

    public var code: Code
    public init(_ code: Code) { self.code = code }
    public var description: String { code.rawValue }
}
