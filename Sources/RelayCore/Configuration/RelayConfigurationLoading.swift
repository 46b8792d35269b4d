import Foundation

extension RelayConfiguration {
    /// Reads and parses a configuration file.
    ///
    /// The only function of RelayCore that touches the file system; everything
    /// else takes text. Secrets the file references are *not* read here.
    public static func load(path: String) throws(RelayConfigurationError) -> RelayConfiguration {
        func failure(_ reason: String) -> RelayConfigurationError {
            RelayConfigurationError(problems: [.init(file: path, keyPath: "(file)", reason: reason)])
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw failure("no such file") }
        guard !isDirectory.boolValue else { throw failure("is a directory, not a file") }
        guard let data = FileManager.default.contents(atPath: path) else { throw failure("cannot be read (permissions?)") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw failure("not UTF-8 text")
        }
        return try parse(yaml: text, fileName: path)
    }
}
