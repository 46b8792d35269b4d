import Foundation
import RelayCore

/// Reads secrets from where the configuration points: a file (one trailing
/// newline is not part of the secret) or an environment variable. Errors name
/// the source, never the value.
public enum RelaySecrets {
    public static func read(_ source: RelaySecretSource) throws(RelayStartupError) -> String {
        switch source {
        case .file(let path):
            guard let data = FileManager.default.contents(atPath: path), var text = String(data: data, encoding: .utf8) else {
                throw RelayStartupError("cannot read secret file \(path)")
            }
            if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
            return text
        case .environment(let name):
            guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
                throw RelayStartupError("environment variable \(name) is not set")
            }
            return value
        }
    }
}

/// Why the relay could not start (exit code 3).
public struct RelayStartupError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
