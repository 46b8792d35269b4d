/// Everything wrong with a configuration file, collected in one pass.
///
/// `check-config` prints ``description``: one problem per line,
/// `FILE: KEY: REASON`, so that an administrator fixes them all at once
/// instead of one per run. Reasons name keys and the offending value where it
/// is not a secret; secret values are never read by the parser, so they
/// cannot leak into a reason.
public struct RelayConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The file name as given to the parser.
        public var file: String
        /// Where in the file: `routes[1].smtp_endpoint`; `(file)` for the file
        /// itself; `line L, column C` for YAML syntax errors.
        public var keyPath: String
        public var reason: String

        public init(file: String, keyPath: String, reason: String) {
            self.file = file
            self.keyPath = keyPath
            self.reason = reason
        }

        public var description: String { "\(file): \(keyPath): \(reason)" }
    }

    /// At least one.
    public var problems: [Problem]

    public init(problems: [Problem]) {
        self.problems = problems
    }

    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
