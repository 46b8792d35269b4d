import Foundation
import RelayCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Secrets, keys and certificates on disk: readable by the service only.
extension Audit {
    /// A file the configuration names, with what it holds.
    struct ReferencedFile {
        enum Kind {
            /// Private keys, client secrets, password hashes, tokens: owner only (mode & 0o077 == 0).
            case secret
            /// Certificates and trust anchors: public, but nobody else may replace them (mode & 0o022 == 0).
            case certificate
        }

        var keyPath: String
        var what: String
        var kind: Kind
        var source: RelaySecretSource
    }

    /// Every secret, key and certificate the configuration references, in file order.
    var referencedFiles: [ReferencedFile] {
        var files: [ReferencedFile] = []
        func secret(_ keyPath: String, _ what: String, _ source: RelaySecretSource?) {
            if let source { files.append(.init(keyPath: keyPath, what: what, kind: .secret, source: source)) }
        }
        func certificate(_ keyPath: String, _ what: String, _ path: String?) {
            if let path { files.append(.init(keyPath: keyPath, what: what, kind: .certificate, source: .file(path))) }
        }
        if let tls = configuration.server.tls {
            certificate("server.tls.certificate_file", "TLS certificate", tls.certificateFile)
            secret("server.tls.private_key_file", "TLS private key", tls.privateKey)
        }
        secret("storage.password_file", "database password", configuration.storage.password)
        for (index, client) in configuration.clients.enumerated() {
            secret("clients[\(index)].password_hash_file", "password hash of \(client.name)", client.passwordHash)
        }
        for (index, route) in configuration.routes.enumerated() {
            let path = "routes[\(index)]"
            secret("\(path).client_secret_file", "client secret of \(route.name)", route.clientSecret)
            certificate("\(path).client_certificate_file", "client certificate of \(route.name)", route.clientCertificateFile)
            secret("\(path).client_key_file", "client key of \(route.name)", route.clientKey)
            secret("\(path).password_file", "password of \(route.name)", route.password)
            secret("\(path).token_file", "token of \(route.name)", route.token)
            certificate("\(path).ca_file", "trust anchors of \(route.name)", route.caFile)
        }
        for (index, dkim) in configuration.dkim.enumerated() {
            secret("dkim[\(index)].private_key_file", "DKIM key \(dkim.selector)._domainkey.\(dkim.domain)", dkim.privateKey)
        }
        if let admin = configuration.admin {
            secret("admin.token_file", "admin API token", admin.token)
        }
        certificate("alerts.ca_file", "webhook trust anchors", configuration.alerts?.caFile)
        return files
    }

    mutating func secretFilesArePrivate(configurationPath: String?) {
        for file in referencedFiles {
            let action = "File permissions: \(file.keyPath) (\(file.what))"
            switch file.source {
            case .environment(let name):
                let key = file.keyPath.hasSuffix("_file") ? String(file.keyPath.dropLast(5)) + "_env" : file.keyPath
                add(action, "\(key): from environment variable \(name), no file to protect", .pass)
            case .file(let path):
                check(file, path: path, action: action)
            }
        }
        // The configuration holds no secret unless it carries a webhook URL (a
        // capability in its path) or a database password inline in storage.url.
        if let configurationPath {
            var inline: [String] = []
            if configuration.alerts?.webhookURL != nil { inline.append("alerts.webhook_url") }
            if case .postgres(let url) = configuration.storage.location, Self.hasInlinePassword(url) { inline.append("storage.url") }
            let what = inline.isEmpty ? "configuration file" : "configuration file (holds \(inline.listedInProse))"
            check(ReferencedFile(keyPath: "--config", what: what, kind: inline.isEmpty ? .certificate : .secret, source: .file(configurationPath)),
                  path: configurationPath, action: "File permissions: \(configurationPath) (\(what))")
        }
        if referencedFiles.isEmpty && configurationPath == nil {
            add("File permissions", "the configuration references no secret, key or certificate file", .pass)
        }
    }

    private mutating func check(_ file: ReferencedFile, path: String, action: String) {
        var status = stat()
        guard stat(path, &status) == 0 else {
            let reason = errno == ENOENT ? "no such file" : String(cString: strerror(errno))
            add(action, "\(path): \(reason)", .fail,
                hint: "Create \(path) (owner the service user, mode \(file.kind == .secret ? "600" : "644")) or correct \(file.keyPath).")
            return
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            add(action, "\(path) is not a regular file", .fail, hint: "Point \(file.keyPath) at the file itself.")
            return
        }
        let mode = Int(status.st_mode & 0o7777)
        let octal = "0" + String(mode, radix: 8)
        switch file.kind {
        case .secret:
            if mode & 0o077 == 0 {
                add(action, "\(path) mode \(octal): owner only", .pass)
            } else {
                let who = mode & 0o007 != 0 ? "every user on the machine" : "its group"
                add(action, "\(path) mode \(octal): readable or writable by \(who)", .fail,
                    hint: "chmod 600 \(Self.shellQuoted(path))   (and chown it to the user the relay runs as)")
            }
        case .certificate:
            if mode & 0o022 == 0 {
                add(action, "\(path) mode \(octal): only the owner may change it", .pass)
            } else {
                add(action, "\(path) mode \(octal): others may replace it", .fail,
                    hint: "chmod 644 \(Self.shellQuoted(path))")
            }
        }
    }

    /// `postgres://user:password@host/db`: a password between `:` and `@` in the authority.
    static func hasInlinePassword(_ url: String) -> Bool {
        guard let schemeEnd = url.range(of: "://") else { return false }
        let authority = url[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" }
        guard let at = authority.lastIndex(of: "@") else { return false }
        return authority[..<at].contains(":")
    }

    /// A path as a shell word: as is when harmless, else single-quoted.
    static func shellQuoted(_ path: String) -> String {
        let harmless = path.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "/._-+,:@%".unicodeScalars.contains($0)) }
        return harmless && !path.isEmpty ? path : "'" + path.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
