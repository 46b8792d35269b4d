import Dispatch
import Foundation
import NIOConcurrencyHelpers
import RelayCore

/// Ingress state that outlives a connection and is shared by every listener:
/// what the relay remembers about a client address or a client rule across
/// reconnects (AUTH failures and lockouts, message rates), and the password
/// hashes of the `auth: password` clients.
final class RelayIngressSecurity: Sendable {
    /// The client rules in force: the start's, until a reload replaces them
    /// (``reload(configuration:)``). Sessions take a snapshot when they start.
    var configuration: RelayConfiguration { rules.withLockedValue { $0.configuration } }
    private let now: @Sendable () -> Date
    /// The configuration with the password hash per username, read at start
    /// and at each reload; a problem is kept so that the AUTH that needs it
    /// can be logged and refused.
    private let rules: NIOLockedValueBox<(configuration: RelayConfiguration, credentials: [String: Result<RelayPasswordHash, CredentialProblem>])>
    private let lockout: NIOLockedValueBox<RelayAuthLockout<RelayIPAddress>>
    private let rates = NIOLockedValueBox(RelayRateLimiter<String>())
    /// scrypt runs here, one check at a time: never on an event loop, never on
    /// the cooperative pool, and at most one 32 MiB working set.
    private let verifier = DispatchQueue(label: "m365-relay.password-verification")
    private let pendingVerifications = NIOLockedValueBox(0)
    /// Checks queued beyond this are answered `454` at once, so that a flood
    /// of AUTH commands cannot queue minutes of CPU behind a real client.
    static let maximumPendingVerifications = 16
    /// Checked when the username is unknown, so that a wrong username takes
    /// as long as a wrong password and does not reveal which usernames exist.
    private let decoy = RelayPasswordHash(parameters: .recommended, salt: Array(repeating: 0x5A, count: 16), hash: Array(repeating: 0, count: 32))

    struct CredentialProblem: Error, CustomStringConvertible {
        var description: String
    }

    init(configuration: RelayConfiguration, now: @escaping @Sendable () -> Date = Date.init) {
        self.now = now
        rules = NIOLockedValueBox((configuration, Self.readCredentials(configuration)))
        let limits = configuration.server.limits
        lockout = NIOLockedValueBox(RelayAuthLockout(policy: .init(
            maxFailures: limits.authFailures, window: limits.authLockout, lockout: limits.authLockout)))
    }

    /// New client rules (a configuration reload): new sessions use them; the
    /// lockouts and rates remembered so far stay.
    func reload(configuration: RelayConfiguration) {
        let credentials = Self.readCredentials(configuration)
        rules.withLockedValue { $0 = (configuration, credentials) }
        credentialProblemsReported.withLockedValue { $0 = false }
    }

    private static func readCredentials(_ configuration: RelayConfiguration) -> [String: Result<RelayPasswordHash, CredentialProblem>] {
        var credentials: [String: Result<RelayPasswordHash, CredentialProblem>] = [:]
        for client in configuration.clients where client.auth == .password {
            guard let username = client.username else { continue }
            guard let source = client.passwordHash else {
                credentials[username] = .failure(CredentialProblem(description: "no password_hash_file"))
                continue
            }
            do {
                credentials[username] = .success(try RelayPasswordHash(parsing: try RelaySecrets.read(source)))
            } catch {
                credentials[username] = .failure(CredentialProblem(description: "\(error)"))
            }
        }
        return credentials
    }

    /// Password clients whose hash could not be read or parsed, with why
    /// (never the hash).
    var credentialProblems: [(username: String, problem: String)] {
        rules.withLockedValue { $0.credentials }.compactMap { username, result in
            if case .failure(let problem) = result { (username, problem.description) } else { nil }
        }.sorted { $0.username < $1.username }
    }

    private let credentialProblemsReported = NIOLockedValueBox(false)

    /// ``credentialProblems`` the first time it is asked, then nothing: every
    /// listener's ingress asks, the log should say it once.
    func credentialProblemsToReport() -> [(username: String, problem: String)] {
        let first = credentialProblemsReported.withLockedValue { reported in
            defer { reported = true }
            return !reported
        }
        return first ? credentialProblems : []
    }

    private var seconds: Double { now().timeIntervalSinceReferenceDate }

    // MARK: Lockout

    /// Lockouts are per address; IPv6 per /64, the smallest block a site is
    /// usually given, so that one host cannot rotate through its addresses.
    static func lockoutKey(_ address: RelayIPAddress) -> RelayIPAddress {
        address.family == .v6 ? RelayNetwork(address: address, prefixLength: 64).address : address
    }

    /// nil when the address may try; else when its lockout ends.
    func lockedOutUntil(_ address: RelayIPAddress) -> Date? {
        let now = seconds
        switch lockout.withLockedValue({ $0.admission(Self.lockoutKey(address), now: now) }) {
        case .allowed: return nil
        case .lockedOut(let until): return Date(timeIntervalSinceReferenceDate: until)
        }
    }

    func recordFailure(_ address: RelayIPAddress) -> RelayAuthLockout<RelayIPAddress>.Failure {
        let now = seconds
        return lockout.withLockedValue { $0.recordFailure(Self.lockoutKey(address), now: now) }
    }

    func recordSuccess(_ address: RelayIPAddress) {
        let now = seconds
        lockout.withLockedValue { $0.recordSuccess(Self.lockoutKey(address), now: now) }
    }

    // MARK: Passwords

    enum Verification: Sendable {
        case valid
        case invalid
        /// Too many checks queued: try again later.
        case busy
        /// The client's configured hash is unusable.
        case misconfigured(String)
    }

    /// Checks `password` for `username` (nil: no such client here; a decoy
    /// check keeps the timing the same). Suspends; the work runs on
    /// ``verifier``.
    func verify(username: String?, password: [UInt8]) async -> Verification {
        let hash: RelayPasswordHash
        var problem: String?
        let credentials = rules.withLockedValue { $0.credentials }
        switch username.flatMap({ credentials[$0] }) {
        case .success(let stored)?: hash = stored
        case .failure(let error)?:
            hash = decoy
            problem = error.description
        case nil: hash = decoy
        }
        let admitted = pendingVerifications.withLockedValue { pending -> Bool in
            guard pending < Self.maximumPendingVerifications else { return false }
            pending += 1
            return true
        }
        guard admitted else { return .busy }
        let matched: Bool = await withCheckedContinuation { continuation in
            verifier.async {
                continuation.resume(returning: hash.verify(password))
            }
        }
        pendingVerifications.withLockedValue { $0 -= 1 }
        if let problem { return .misconfigured(problem) }
        return matched && username != nil ? .valid : .invalid
    }

    // MARK: Rates

    /// Takes one message from `client`'s `rate_limit`; true when allowed.
    func takeMessage(client: RelayConfiguration.Client) -> Bool {
        guard let limit = client.rateLimit else { return true }
        let now = seconds
        return rates.withLockedValue { $0.take(client.name, limit: limit, now: now) } == .allowed
    }
}
