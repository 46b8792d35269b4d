import Logging
import M365Delivery
import RelayCore

/// Loads the `dkim` keys at start: a key that cannot be used stops the
/// start (exit 3) with the file named, rather than mail leaving unsigned.
public enum RelayDKIMKeys {
    public static func signer(for entries: [RelayConfiguration.DKIM], logger: Logger) throws(RelayStartupError) -> RelayDKIMSigner? {
        guard !entries.isEmpty else { return nil }
        var signers: [DKIMSigner] = []
        for (index, entry) in entries.enumerated() {
            // d= and s= go into a header field as they are: DNS labels only.
            let label = { (text: String) in !text.isEmpty && text.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) } }
            guard label(entry.domain), label(entry.selector) else {
                throw RelayStartupError("dkim[\(index)]: domain and selector must be DNS names (letters, digits, '-', '_', '.')")
            }
            let pem = try RelaySecrets.read(entry.privateKey)
            let key: DKIMSigningKey
            do {
                key = try DKIMSigningKey(pemRepresentation: pem)
            } catch {
                throw RelayStartupError("dkim[\(index)] \(entry.selector)._domainkey.\(entry.domain): private key (\(entry.privateKey)) is not usable: \(error)")
            }
            signers.append(DKIMSigner(domain: entry.domain, selector: entry.selector, key: key, headers: entry.headers))
            logger.info("DKIM signing", metadata: ["domain": "\(entry.domain)", "selector": "\(entry.selector)", "algorithm": "\(key.algorithm.rawValue)"])
        }
        var signerLogger = logger
        signerLogger[metadataKey: "component"] = "dkim"
        return RelayDKIMSigner(signers: signers, logger: signerLogger)
    }
}
