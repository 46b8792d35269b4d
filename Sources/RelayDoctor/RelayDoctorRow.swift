import Foundation

/// One row of `m365-relay doctor`: one step of the implementation checklist.
public struct RelayDoctorRow: Sendable, Hashable, Codable {
    public enum Result: String, Sendable, Hashable, Codable {
        /// Verified.
        case pass
        /// Verified wrong: `hint` says what to fix. Any `fail` makes `doctor` exit 1.
        case fail
        /// Works, but something deserves attention (an expiry within 30 days, no TLS-RPT).
        case warn
        /// Reported for information (MTA-STS, TLS-RPT).
        case info
        /// Not applicable or could not run because an earlier step failed (the hint says which).
        case skip
    }

    /// The checklist section: `Configuration`, `DNS`, `Connectivity`, `Authentication`, `Connector`, `Test message`, `Local`, `Audit`.
    public var step: String
    /// What was checked, e.g. `MX of contoso.com`.
    public var action: String
    /// How it was verified and what was found, e.g. `MX 0 contoso-com.mail.protection.outlook.com`.
    public var verification: String
    public var result: Result
    /// What to do when it is not `pass`; empty when nothing.
    public var hint: String

    public init(step: String, action: String, verification: String, result: Result, hint: String = "") {
        self.step = step
        self.action = action
        self.verification = verification
        self.result = result
        self.hint = hint
    }
}

extension [String] {
    /// `a`, `a and b`, `a, b and c`: names in a row's or a script's prose.
    var listedInProse: String {
        count <= 1 ? joined() : dropLast().joined(separator: ", ") + " and " + self[count - 1]
    }
}
