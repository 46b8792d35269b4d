import Foundation
import NIOCore
import RelayCore
import RelayDNS
import RelayServer

/// Where the checklist meets the DNS checks (Sources/RelayDoctor/DNS) and the
/// audit (Sources/RelayDoctor/Audit).
enum RelayDoctorIntegration {
    /// The DNS step: `--domain`s, else the domains the configuration sends from,
    /// asked of `--dns-server`, else `dns.server`, else the system's resolver.
    static func dnsRows(configuration: RelayConfiguration, options: RelayDoctor.Options) async -> [RelayDoctorRow] {
        let domains = options.domains.isEmpty ? RelayDoctorDNSChecks.senderDomains(of: configuration) : options.domains
        guard !domains.isEmpty else {
            return [RelayDoctorRow(
                step: RelayDoctorStep.dns, action: "DNS of the sender domains", verification: "the configuration names no sender domain",
                result: .skip, hint: "Pass --domain contoso.com (repeatable), or give clients allowed_senders / rewrite_sender in your domain")]
        }
        let server = options.dnsServer ?? configuration.dns.server
        let resolver = RelayDNSClient(
            server: server.map { ($0.host, $0.port) }, timeout: .milliseconds(Int64(configuration.dns.timeout * 1000)))
        var keys: [RelayDKIMPublishedKey] = []
        for entry in configuration.dkim {
            // A key that cannot be read gets the DNS helper's skip row; the Local step says why.
            guard let pem = try? RelaySecrets.read(entry.privateKey), let key = try? RelayDKIMPublishedKey(entry: entry, privateKeyPEM: pem) else { continue }
            keys.append(key)
        }
        return await RelayDoctorDNSChecks.rows(configuration: configuration, domains: domains, resolver: resolver, dkimPublicKeys: keys)
    }

    /// `--audit`: the compliance review instead of the checklist.
    static func auditRows(configuration: RelayConfiguration, options: RelayDoctor.Options) async -> [RelayDoctorRow] {
        // The audit reads files: keep it off the cooperative pool.
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var auditOptions = RelayDoctorAudit.Options()
                auditOptions.widestIPv4Prefix = options.widestIPv4Prefix
                continuation.resume(returning: RelayDoctorAudit.rows(
                    configuration: configuration, configurationPath: options.configurationPath, options: auditOptions, now: options.now))
            }
        }
    }
}
