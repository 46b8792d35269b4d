import Foundation
import RelayCore
import RelayServer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Step Local: this host can run the relay: storage writable with room,
/// listener ports free, TLS files readable and private, nothing expiring.
extension RelayDoctorRun {
    /// Free space below this fails: SQLite and the spool cannot take a message burst.
    static let diskFailBelow: Int64 = 100 * 1_048_576
    /// Free space below this warns.
    static let diskWarnBelow: Int64 = 1_073_741_824
    /// Expiry within this many days warns.
    static let expiryWarningDays = 30

    func localRows() -> [RelayDoctorRow] {
        var rows = storageRows()
        rows += listenerRows()
        rows += fileRows()
        rows += expiryRows()
        return rows
    }

    // MARK: Storage

    private func storageRows() -> [RelayDoctorRow] {
        let step = RelayDoctorStep.local
        guard case .sqlite(let path) = configuration.storage.location else {
            return [RelayDoctorRow(step: step, action: "Storage \(Self.redactedStorage(configuration.storage.location))",
                                   verification: "PostgreSQL is not checked by doctor", result: .info)]
        }
        let directory = ((path as NSString).deletingLastPathComponent as NSString).standardizingPath
        let shown = directory.isEmpty ? "." : directory
        var rows: [RelayDoctorRow] = []
        // The relay creates a missing directory: then its nearest existing parent must be writable.
        var existing = directory.isEmpty ? "." : directory
        var isDirectory: ObjCBool = false
        while !FileManager.default.fileExists(atPath: existing, isDirectory: &isDirectory) {
            let parent = (existing as NSString).deletingLastPathComponent
            if parent == existing || parent.isEmpty { existing = "."; break }
            existing = parent
        }
        let writeAction = "Storage directory \(shown) is writable"
        let probe = (existing as NSString).appendingPathComponent(".m365-relay-doctor-\(UUID().uuidString.prefix(8))")
        if FileManager.default.createFile(atPath: probe, contents: Data("probe".utf8)) {
            try? FileManager.default.removeItem(atPath: probe)
            rows.append(RelayDoctorRow(step: step, action: writeAction,
                                       verification: existing == shown ? "created and removed a probe file" : "does not exist yet; \(existing) is writable, so the relay can create it",
                                       result: .pass))
        } else {
            rows.append(RelayDoctorRow(step: step, action: writeAction, verification: "cannot create a file in \(existing)", result: .fail,
                                       hint: "Give the relay's user write access: chown -R <relay-user> \(existing) (or change storage.url)"))
        }
        let diskAction = "Free disk space for \(shown)"
        if let attributes = try? FileManager.default.attributesOfFileSystem(forPath: existing),
           let free = (attributes[.systemFreeSize] as? NSNumber)?.int64Value {
            let text = ByteCountFormatter.string(fromByteCount: free, countStyle: .binary) + " free"
            if free < Self.diskFailBelow {
                rows.append(RelayDoctorRow(step: step, action: diskAction, verification: text, result: .fail,
                                           hint: "Under 100 MiB: the queue cannot take messages; free space or move storage.url to a larger volume"))
            } else if free < Self.diskWarnBelow {
                rows.append(RelayDoctorRow(step: step, action: diskAction, verification: text, result: .warn,
                                           hint: "Under 1 GiB: a burst of large messages or an outage upstream can fill it; free space or move storage.url"))
            } else {
                rows.append(RelayDoctorRow(step: step, action: diskAction, verification: text, result: .pass))
            }
        } else {
            rows.append(RelayDoctorRow(step: step, action: diskAction, verification: "cannot read the file system's free space", result: .warn,
                                       hint: "Check the volume of \(existing) by hand (df -h \(existing))"))
        }
        return rows
    }

    private static func redactedStorage(_ location: RelayStorageLocation) -> String {
        guard case .postgres(let url) = location, var components = URLComponents(string: url) else { return "\(location)" }
        if components.password != nil { components.password = "redacted" }
        return components.string ?? "postgres"
    }

    // MARK: Listeners

    private func listenerRows() -> [RelayDoctorRow] {
        var addresses = configuration.server.listeners.map { ($0.address, "SMTP listener") }
        if let admin = configuration.admin { addresses.append((admin.address, "admin listener")) }
        return addresses.map { address, label in
            let action = "\(label) \(address) can be bound"
            guard address.port != 0 else {
                return RelayDoctorRow(step: RelayDoctorStep.local, action: action, verification: "port 0: the system picks a free port", result: .info)
            }
            switch RelayDoctorPortCheck.check(host: address.host, port: address.port) {
            case .success:
                return RelayDoctorRow(step: RelayDoctorStep.local, action: action, verification: "bound and released", result: .pass)
            case .failure(let failure):
                switch failure {
                case .inUse:
                    return RelayDoctorRow(step: RelayDoctorStep.local, action: action, verification: "in use (the relay is running?)", result: .warn,
                                          hint: "If the relay is not running, find what holds the port: ss -ltnp 'sport = :\(address.port)'")
                case .permission:
                    return RelayDoctorRow(step: RelayDoctorStep.local, action: action, verification: "permission denied", result: .fail,
                                          hint: "Ports under 1024 need privilege: run the service with AmbientCapabilities=CAP_NET_BIND_SERVICE, or setcap 'cap_net_bind_service=+ep' on the binary")
                case .notLocal:
                    return RelayDoctorRow(step: RelayDoctorStep.local, action: action, verification: "\(address.host) is not an address of this host", result: .fail,
                                          hint: "Use an address this host has (ip -brief address), or 0.0.0.0 / [::] for all")
                case .other(let text):
                    return RelayDoctorRow(step: RelayDoctorStep.local, action: action, verification: text, result: .fail,
                                          hint: "Check server.listeners[].address")
                }
            }
        }
    }

    // MARK: Files

    /// Key and secret files the configuration names, and whether they are private.
    private func fileRows() -> [RelayDoctorRow] {
        var rows: [RelayDoctorRow] = []
        let step = RelayDoctorStep.local
        if let tls = configuration.server.tls {
            let action = "TLS certificate \(tls.certificateFile) is readable"
            if let text = try? String(contentsOfFile: tls.certificateFile, encoding: .utf8), text.contains("-----BEGIN CERTIFICATE-----") {
                rows.append(RelayDoctorRow(step: step, action: action, verification: "PEM certificate", result: .pass))
            } else {
                rows.append(RelayDoctorRow(step: step, action: action, verification: "cannot read a PEM certificate", result: .fail,
                                           hint: "Check server.tls.certificate_file and that the relay's user can read it"))
            }
        }
        var keys: [(source: RelaySecretSource, what: String, isKey: Bool)] = []
        if let tls = configuration.server.tls { keys.append((tls.privateKey, "TLS private key", true)) }
        for route in configuration.routes {
            if let key = route.clientKey { keys.append((key, "route \(route.name) client key", true)) }
            if let secret = route.clientSecret { keys.append((secret, "route \(route.name) client secret", false)) }
            if let password = route.password { keys.append((password, "route \(route.name) password", false)) }
            if let token = route.token { keys.append((token, "route \(route.name) token", false)) }
        }
        for dkim in configuration.dkim { keys.append((dkim.privateKey, "DKIM key \(dkim.selector)._domainkey.\(dkim.domain)", true)) }
        var seen = Set<String>()
        for (source, what, isKey) in keys {
            guard case .file(let path) = source, seen.insert(path).inserted else { continue }
            rows.append(Self.privateFileRow(path: path, what: what, isKey: isKey))
        }
        return rows
    }

    static func privateFileRow(path: String, what: String, isKey: Bool) -> RelayDoctorRow {
        let step = RelayDoctorStep.local
        let action = "\(what) \(path) is readable and private"
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            return RelayDoctorRow(step: step, action: action, verification: "cannot be read", result: .fail,
                                  hint: "Check the path and give the relay's user read access: chown <relay-user> \(path); chmod 600 \(path)")
        }
        if isKey && !text.contains("PRIVATE KEY-----") {
            return RelayDoctorRow(step: step, action: action, verification: "not a PEM private key", result: .fail,
                                  hint: "The file must hold a PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY)")
        }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue else {
            return RelayDoctorRow(step: step, action: action, verification: "readable; permissions unknown", result: .warn)
        }
        let octal = String(mode & 0o777, radix: 8)
        if mode & 0o077 != 0 {
            let who = mode & 0o007 != 0 ? "world" : "group"
            return RelayDoctorRow(step: step, action: action, verification: "mode \(octal): readable by its \(who)", result: .fail,
                                  hint: "chmod 600 \(path)")
        }
        return RelayDoctorRow(step: step, action: action, verification: "mode \(octal)", result: .pass)
    }

    // MARK: Expiry

    private func expiryRows() -> [RelayDoctorRow] {
        RelayCredentialExpiry.expiries(in: configuration).map { expiry in
            let action = "\(expiry.name) expiry"
            let days = Int(expiry.notAfter.timeIntervalSince(options.now) / 86_400)
            let day = RelayConfigurationSyntax.formatDay(expiry.notAfter)
            let renew: String
            switch expiry.what {
            case .certificate: renew = "Renew the certificate and replace the file; the relay reloads it on restart"
            case .secret: renew = "Create a new client secret in the app registration (Entra ID, Certificates & secrets), put it in the secret file and update client_secret_expires"
            case .token: renew = "Replace the static token, or give the route client credentials so that tokens are renewed automatically"
            }
            if expiry.notAfter <= options.now {
                return RelayDoctorRow(step: RelayDoctorStep.local, action: action, verification: "expired on \(day)", result: .fail, hint: renew)
            }
            if days < Self.expiryWarningDays {
                return RelayDoctorRow(step: RelayDoctorStep.local, action: action, verification: "expires on \(day) (\(days) days left)", result: .warn, hint: renew)
            }
            return RelayDoctorRow(step: RelayDoctorStep.local, action: action, verification: "valid until \(day) (\(days) days left)", result: .pass)
        }
    }
}

/// Binds a TCP port and lets it go, the way the listener will.
enum RelayDoctorPortCheck {
    enum Failure: Error {
        case inUse, permission, notLocal
        case other(String)
    }

    static func check(host: String, port: Int) -> Result<Void, Failure> {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            return .failure(.other("\(host) does not resolve: \(String(cString: gai_strerror(status)))"))
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return .failure(.other("socket: \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        // As the listener does (SwiftNIO sets SO_REUSEADDR): a port in TIME_WAIT is free.
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            switch errno {
            case EADDRINUSE: return .failure(.inUse)
            case EACCES: return .failure(.permission)
            case EADDRNOTAVAIL: return .failure(.notLocal)
            default: return .failure(.other(String(cString: strerror(errno))))
            }
        }
        // bind alone succeeds on a port another socket listens on with SO_REUSEADDR on some systems; listen decides.
        guard listen(fd, 1) == 0 else {
            return errno == EADDRINUSE ? .failure(.inUse) : .failure(.other(String(cString: strerror(errno))))
        }
        return .success(())
    }
}
