import Foundation
import NIOCore
import NIOSSL
import RelayCore
import X509

/// Step Connectivity, per distinct endpoint of the routes: TCP, STARTTLS or
/// the TLS handshake, the TLS version, and the endpoint's certificate.
extension RelayDoctorRun {
    /// The endpoints of every complete route, first use first, with their labels and routes.
    func endpoints() -> [(endpoint: RelayDoctorEndpoint, labels: [String], routes: [String])] {
        var order: [RelayDoctorEndpoint] = []
        var labels: [RelayDoctorEndpoint: [String]] = [:]
        var routes: [RelayDoctorEndpoint: [String]] = [:]
        for route in configuration.routes where incompleteRoutes[route.name] == nil {
            for (endpoint, label) in route.doctorEndpoints {
                if labels[endpoint] == nil { order.append(endpoint) }
                if !(labels[endpoint] ?? []).contains(label) { labels[endpoint, default: []].append(label) }
                if !(routes[endpoint] ?? []).contains(route.name) { routes[endpoint, default: []].append(route.name) }
            }
        }
        return order.map { ($0, labels[$0] ?? [], routes[$0] ?? []) }
    }

    mutating func connectivityRows() async -> [RelayDoctorRow] {
        var rows: [RelayDoctorRow] = []
        for route in configuration.routes {
            if let action = incompleteRoutes[route.name] {
                rows.append(skipped(RelayDoctorStep.connectivity, "Endpoints of route \(route.name)", because: action))
            }
        }
        let all = endpoints()
        if all.isEmpty && rows.isEmpty {
            return [RelayDoctorRow(step: RelayDoctorStep.connectivity, action: "Endpoints of the routes",
                                   verification: "no route reaches Microsoft 365 over the network (sandbox routes run in-process)", result: .info)]
        }
        for (endpoint, labels, routes) in all {
            let what = "\(labels.joined(separator: " and ")) \(endpoint.address) (route\(routes.count == 1 ? "" : "s") \(routes.joined(separator: ", ")))"
            let probe = await RelayDoctorEndpointProbe.run(endpoint, heloName: configuration.server.hostname, timeout: options.timeout, now: options.now, group: group)
            let tcpAction = "TCP to \(what)"
            let tlsAction = endpoint.kind == .smtp ? "STARTTLS on \(endpoint.address)" : "TLS handshake with \(endpoint.address)"
            let versionAction = "TLS version of \(endpoint.address)"
            let certificateAction = "Certificate of \(endpoint.address)"
            switch probe.tcp {
            case .failure(let error):
                rows.append(RelayDoctorRow(step: RelayDoctorStep.connectivity, action: tcpAction, verification: error.description, result: .fail, hint: endpoint.firewallHint))
                unreachable[endpoint] = tcpAction
                if endpoint.tls {
                    rows += [tlsAction, versionAction, certificateAction].map { skipped(RelayDoctorStep.connectivity, $0, because: tcpAction) }
                }
                continue
            case .success(let time):
                rows.append(RelayDoctorRow(step: RelayDoctorStep.connectivity, action: tcpAction,
                                           verification: "connected in \(Int((time * 1000).rounded())) ms", result: .pass))
            }
            guard endpoint.tls else {
                rows.append(RelayDoctorRow(step: RelayDoctorStep.connectivity, action: "TLS with \(endpoint.address)",
                                           verification: "plaintext by configuration (tls: none or http://, loopback only)", result: .info))
                continue
            }
            guard let handshake = probe.handshake else { continue }
            switch handshake {
            case .failure(let error):
                rows.append(RelayDoctorRow(
                    step: RelayDoctorStep.connectivity, action: tlsAction, verification: error.description, result: .fail,
                    hint: error.detail.hasPrefix("cannot use ca_file")
                        ? "ca_file must be a PEM file of CA certificates readable by the relay's user"
                        : error.detail.contains("STARTTLS is not offered")
                        ? "Something between this host and \(endpoint.host) strips STARTTLS (a firewall's SMTP inspection, e.g. Cisco ESMTP inspection): turn that off for this traffic"
                        : "A proxy or firewall may interfere with TLS to \(endpoint.host): let the connection through unmodified, or if it inspects TLS set the route's ca_file to its CA"))
                unreachable[endpoint] = tlsAction
                rows += [versionAction, certificateAction].map { skipped(RelayDoctorStep.connectivity, $0, because: tlsAction) }
                continue
            case .success(let tls):
                rows.append(RelayDoctorRow(step: RelayDoctorStep.connectivity, action: tlsAction,
                                           verification: endpoint.kind == .smtp ? "STARTTLS offered, 220, handshake completed" : "handshake completed", result: .pass))
                let version = tls.version ?? "unknown"
                let modern = version == "TLSv1.2" || version == "TLSv1.3"
                rows.append(RelayDoctorRow(
                    step: RelayDoctorStep.connectivity, action: versionAction, verification: version, result: modern ? .pass : .fail,
                    hint: modern ? "" : "Microsoft 365 refuses TLS 1.0 and 1.1 (421 4.7.66): a proxy in the path negotiates an old version; allow TLS 1.2 or later"))
                if !modern { unreachable[endpoint] = versionAction }
            }
            let certificate = RelayDoctorEndpointProbe.certificateRow(probe, endpoint: endpoint, action: certificateAction, now: options.now)
            if certificate.result == .fail { unreachable[endpoint] = certificateAction }
            rows.append(certificate)
        }
        return rows
    }
}

/// Probes one endpoint: TCP, then TLS with the routes' trust; when the
/// certificate does not verify, a second handshake without verification
/// reads it so that the row can say why (expired, another name, unknown CA).
struct RelayDoctorEndpointProbe {
    var tcp: Result<TimeInterval, RelayDoctorProbeError>
    /// nil for a plaintext endpoint or when TCP failed.
    var handshake: Result<RelayDoctorTLSResult, RelayDoctorProbeError>?
    /// The verification error, when the handshake only worked without verification.
    var verificationError: RelayDoctorProbeError?

    static func run(_ endpoint: RelayDoctorEndpoint, heloName: String, timeout: TimeInterval, now: Date, group: any EventLoopGroup) async -> RelayDoctorEndpointProbe {
        let verifying: NIOSSLContext
        let reading: NIOSSLContext
        do {
            verifying = try RelayDoctorNetwork.probeContext(caFile: endpoint.caFile, verify: true)
            reading = try RelayDoctorNetwork.probeContext(caFile: nil, verify: false)
        } catch {
            // TCP can still be proved; TLS cannot be tried with the routes' trust.
            var plain = await attempt(endpoint, context: nil, heloName: heloName, timeout: timeout, group: group)
            if case .success = plain.tcp {
                plain.handshake = .failure(RelayDoctorProbeError(stage: .handshake, detail: "cannot use ca_file \(endpoint.caFile ?? "-"): \(error)"))
            }
            return plain
        }
        var probe = await attempt(endpoint, context: endpoint.tls ? verifying : nil, heloName: heloName, timeout: timeout, group: group)
        if case .failure(let error)? = probe.handshake, RelayDoctorNetwork.isCertificateFailure(error) {
            let second = await attempt(endpoint, context: reading, heloName: heloName, timeout: timeout, group: group)
            if case .success? = second.handshake {
                probe.handshake = second.handshake
                probe.verificationError = error
            }
        }
        return probe
    }

    private static func attempt(_ endpoint: RelayDoctorEndpoint, context: NIOSSLContext?, heloName: String, timeout: TimeInterval, group: any EventLoopGroup) async -> RelayDoctorEndpointProbe {
        switch endpoint.kind {
        case .smtp:
            let smtp: RelayDoctorSMTPProbe
            do {
                smtp = try await RelayDoctorSMTPProbe.open(host: endpoint.host, port: endpoint.port, heloName: heloName, timeout: timeout, group: group)
            } catch {
                // A greeting that never came or refused is still a connection that works at TCP level.
                if error.stage == .connect { return RelayDoctorEndpointProbe(tcp: .failure(error)) }
                return RelayDoctorEndpointProbe(tcp: .success(0), handshake: context == nil ? nil : .failure(error))
            }
            guard let context else {
                await smtp.quit()
                return RelayDoctorEndpointProbe(tcp: .success(smtp.connectTime))
            }
            let result: Result<RelayDoctorTLSResult, RelayDoctorProbeError>
            do {
                try await smtp.ehlo()
                result = .success(try await smtp.startTLS(context: context))
            } catch {
                result = .failure(error)
            }
            await smtp.quit()
            return RelayDoctorEndpointProbe(tcp: .success(smtp.connectTime), handshake: result)
        case .https:
            let channel: any Channel
            let time: TimeInterval
            do {
                (channel, time) = try await RelayDoctorNetwork.connect(host: endpoint.host, port: endpoint.port, timeout: timeout, group: group)
            } catch {
                return RelayDoctorEndpointProbe(tcp: .failure(error))
            }
            guard let context else {
                try? await channel.close()
                return RelayDoctorEndpointProbe(tcp: .success(time))
            }
            let result: Result<RelayDoctorTLSResult, RelayDoctorProbeError>
            do {
                result = .success(try await RelayDoctorNetwork.handshake(channel: channel, context: context, host: endpoint.host, timeout: timeout))
            } catch {
                result = .failure(error)
            }
            try? await channel.close()
            return RelayDoctorEndpointProbe(tcp: .success(time), handshake: result)
        }
    }

    /// The certificate row: trusted and valid (days left), expiring (warn under 30 days), expired or untrusted (fail).
    static func certificateRow(_ probe: RelayDoctorEndpointProbe, endpoint: RelayDoctorEndpoint, action: String, now: Date) -> RelayDoctorRow {
        guard case .success(let tls)? = probe.handshake, let certificate = tls.certificate else {
            return RelayDoctorRow(step: RelayDoctorStep.connectivity, action: action, verification: "the endpoint presented no readable certificate", result: .fail,
                                  hint: "Check that \(endpoint.address) is the Microsoft 365 endpoint (and not a proxy answering for it)")
        }
        let notAfter = certificate.notValidAfter
        let days = Int(notAfter.timeIntervalSince(now) / 86_400)
        let subject = RelayDoctorCertificates.subjectName(certificate)
        let issuer = RelayDoctorCertificates.issuerName(certificate)
        let validity = "\(subject), issued by \(issuer), valid until \(RelayConfigurationSyntax.formatDay(notAfter))"
        if notAfter <= now {
            return RelayDoctorRow(step: RelayDoctorStep.connectivity, action: action, verification: "\(validity): expired", result: .fail,
                                  hint: "The endpoint's certificate has expired: if a proxy presents it, renew the proxy's certificate; otherwise check the host and this machine's clock")
        }
        if let error = probe.verificationError {
            let caHint = endpoint.caFile.map { " (ca_file \($0) does not contain it)" } ?? ""
            return RelayDoctorRow(
                step: RelayDoctorStep.connectivity, action: action, verification: "\(validity): does not verify\(caHint): \(error.detail)", result: .fail,
                hint: "If a proxy inspects TLS, put its CA certificate (PEM) in the route's ca_file; otherwise update this host's CA bundle (ca-certificates) and check that the host name matches the certificate")
        }
        if days < 30 {
            return RelayDoctorRow(step: RelayDoctorStep.connectivity, action: action, verification: "\(validity) (\(days) days left)", result: .warn,
                                  hint: "The endpoint's certificate expires in under 30 days; if it belongs to a proxy or a private CA, renew it")
        }
        return RelayDoctorRow(step: RelayDoctorStep.connectivity, action: action, verification: "trusted; \(validity) (\(days) days left)", result: .pass)
    }
}

/// Names in certificates, for the rows.
enum RelayDoctorCertificates {
    static func subjectName(_ certificate: Certificate) -> String {
        commonName(certificate.subject) ?? "\(certificate.subject)"
    }

    static func issuerName(_ certificate: Certificate) -> String {
        commonName(certificate.issuer) ?? "\(certificate.issuer)"
    }

    private static func commonName(_ name: DistinguishedName) -> String? {
        for rdn in name {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return "CN=\(attribute.value)"
            }
        }
        return nil
    }
}
