/// Configuration texts shared by the configuration tests.
enum ConfigurationFixtures {
    /// The example of PRODUCT.md, verbatim: every key the first releases need.
    static let productExample = """
        server:
          hostname: relay.contoso.local
          listeners:
            - address: "0.0.0.0:25"
              tls: starttls            # none | starttls | implicit
              require_tls: false
            - address: "0.0.0.0:465"
              tls: implicit
          tls:
            certificate_file: /etc/m365-relay/relay.crt
            private_key_file: /etc/m365-relay/relay.key
            min_version: "1.2"
          limits:
            max_message_size: 35MB
            max_recipients: 500
            max_connections: 1000
            max_connections_per_ip: 50
            idle_timeout: 5m

        storage:
          url: "sqlite:/var/lib/m365-relay/relay.sqlite"   # or postgres://user@host/db

        clients:
          - name: scanners
            networks: ["10.20.0.0/24", "fd00:20::/64"]
            auth: none
            allowed_senders: ["scanner@contoso.com"]
            rewrite_sender: "scanner@contoso.com"
            allowed_recipients: ["*"]
            route: tenant
          - name: erp
            networks: ["10.30.0.5/32"]
            auth: password
            username: erp
            password_hash_file: /etc/m365-relay/erp.hash
            allowed_senders: ["*@contoso.com"]
            rate_limit: 120/min
            route: tenant

        routes:
          - name: tenant
            mode: graph                # smtp | graph | connector | direct-send | sandbox
            tenant_id: contoso.onmicrosoft.com
            client_id: 11111111-2222-3333-4444-555555555555
            client_certificate_file: /etc/m365-relay/app.crt
            client_key_file: /etc/m365-relay/app.key
            # client_secret_file: /etc/m365-relay/app.secret
            # Endpoints default to Microsoft's public cloud; override for national
            # clouds, the sandbox or tests:
            # login_url: https://login.microsoftonline.com
            # graph_url: https://graph.microsoft.com
            # smtp_endpoint: smtp.office365.com:587
            # ca_file: /etc/m365-relay/corp-proxy-ca.pem
            # tls: required            # `none` only for a loopback endpoint
            # username / password_file: basic AUTH for an `smtp` route, where still allowed
            quotas: { messages_per_minute: 30, recipients_per_day: 10000, connections: 3 }
            fallback: tenant-smtp
          - name: tenant-smtp
            mode: smtp
            tenant_id: contoso.onmicrosoft.com
            client_id: 11111111-2222-3333-4444-555555555555
            client_secret_file: /etc/m365-relay/app.secret

        delivery:
          retry: [1m, 5m, 15m, 1h, 4h]
          max_age: 5d
          bounces: sender              # sender | operator | none
          operator: it-alerts@contoso.com

        dkim:
          - domain: contoso.com
            selector: relay2026
            private_key_file: /etc/m365-relay/dkim-contoso.key

        admin:
          address: "127.0.0.1:8025"
          token_file: /etc/m365-relay/admin.token

        alerts:
          webhook_url: https://alerts.contoso.local/relay
        """

    /// The smallest valid configuration: one listener, one client, one route.
    /// `extraRoute` and `routeKeys` let a test add to it.
    static func minimal(routeKeys: String = "", clientKeys: String = "", extra: String = "") -> String {
        """
        server:
          listeners:
            - address: "127.0.0.1:2525"
        clients:
          - name: local
            networks: ["127.0.0.0/8"]
            route: out
        \(indent(clientKeys, by: 4))
        routes:
          - name: out
            mode: sandbox
        \(indent(routeKeys, by: 4))
        \(extra)
        """
    }

    private static func indent(_ text: String, by spaces: Int) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? "" : String(repeating: " ", count: spaces) + $0 }
            .joined(separator: "\n")
    }
}
