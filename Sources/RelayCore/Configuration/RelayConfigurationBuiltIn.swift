extension RelayConfiguration {
    /// The setup `serve` runs without a configuration file (PRODUCT.md):
    /// SMTP on 127.0.0.1:2525 without TLS, the admin server on
    /// 127.0.0.1:8025, SQLite under `dataDirectory`, one client `local` for
    /// loopback sources that may send anything, and one `sandbox` route.
    ///
    /// Loopback only, so the open `allowed_senders`/`allowed_recipients`
    /// cannot make an open relay.
    public static func builtInSandbox(dataDirectory: String) -> RelayConfiguration {
        let directory = dataDirectory.hasSuffix("/") && dataDirectory.count > 1 ? String(dataDirectory.dropLast()) : dataDirectory
        var configuration = RelayConfiguration()
        configuration.server.hostname = "localhost"
        configuration.server.listeners = [
            Listener(address: RelayEndpoint(host: "127.0.0.1", port: 2525), tls: .none),
        ]
        configuration.storage = Storage(location: .sqlite(path: directory + "/relay.sqlite"))
        configuration.clients = [
            Client(
                name: "local",
                route: "sandbox",
                networks: [
                    RelayNetwork(address: RelayIPAddress(ipv4: 0x7F00_0000), prefixLength: 8),
                    RelayNetwork(address: RelayIPAddress(ipv6High: 0, low: 1), prefixLength: 128),
                ],
                auth: .none,
                allowedSenders: ["*"],
                allowedRecipients: ["*"]
            ),
        ]
        configuration.routes = [Route(name: "sandbox", mode: .sandbox)]
        configuration.admin = Admin(address: RelayEndpoint(host: "127.0.0.1", port: 8025))
        return configuration
    }
}
