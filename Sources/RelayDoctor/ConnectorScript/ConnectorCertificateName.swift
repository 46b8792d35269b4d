import Foundation
import X509

/// The names a TLS client certificate offers an inbound connector.
///
/// Exchange Online matches `-TlsSenderCertificateName` against the subject
/// CN or a DNS subject alternative name of the certificate the relay presents
/// on STARTTLS; the name must be a domain of the tenant (an accepted domain or
/// a subdomain of one).
public struct RelayConnectorCertificateNames: Sendable, Hashable {
    /// The subject's common name, when it has one.
    public var commonName: String?
    /// DNS names of the subject alternative name extension, in order.
    public var dnsNames: [String]

    public init(commonName: String?, dnsNames: [String]) {
        self.commonName = commonName
        self.dnsNames = dnsNames
    }

    /// The first certificate (the leaf) of a PEM file; nil when none parses.
    public init?(pem: String) {
        let begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----"
        guard let start = pem.range(of: begin), let stop = pem[start.upperBound...].range(of: end),
              let certificate = try? Certificate(pemEncoded: String(pem[start.lowerBound..<stop.upperBound]))
        else { return nil }
        self.init(certificate: certificate)
    }

    public init(certificate: Certificate) {
        var commonName: String?
        for relativeName in certificate.subject {
            for attribute in relativeName where attribute.type == .RDNAttributeType.commonName {
                commonName = String(attribute.value) ?? commonName
            }
        }
        var dnsNames: [String] = []
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for name in alternatives {
                if case .dnsName(let dns) = name { dnsNames.append(dns) }
            }
        }
        self.init(commonName: commonName, dnsNames: dnsNames)
    }

    /// The name for `-TlsSenderCertificateName`: the CN when it is a host name
    /// (or `*.` wildcard), else the first DNS name; nil when there is neither.
    public var connectorName: String? {
        if let commonName, Self.isHostName(commonName) { return commonName }
        return dnsNames.first(where: Self.isHostName)
    }

    /// Letters, digits, hyphens and dots, an optional leading `*.`, at least two labels.
    static func isHostName(_ text: String) -> Bool {
        let name = text.hasPrefix("*.") ? String(text.dropFirst(2)) : text
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        return labels.count >= 2 && name.utf8.count <= 253 && labels.allSatisfy { label in
            !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                && label.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains(Character($0)) || $0 == "-") }
        }
    }
}
