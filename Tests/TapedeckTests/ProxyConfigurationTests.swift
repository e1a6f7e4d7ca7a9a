import Foundation
import Testing

@testable import Tapedeck

struct ProxyConfigurationTests {
    @Test func readsRoutesFromYAML() throws {
        let yaml = """
            routes:
              - name: postgres
                listen: 127.0.0.1:15432
                upstream: 127.0.0.1:5432
              - name: cache
                listen: unix:/tmp/cache.sock
                upstream: "[::1]:6379"
                connect_timeout: 250ms
            """
        let configuration = try ProxyConfiguration.parse(Data(yaml.utf8), path: "routes.yaml")
        #expect(
            configuration.routes == [
                Route(
                    name: "postgres",
                    listen: .tcp(host: "127.0.0.1", port: 15432),
                    upstream: .tcp(host: "127.0.0.1", port: 5432)
                ),
                Route(
                    name: "cache",
                    listen: .unix(path: "/tmp/cache.sock"),
                    upstream: .tcp(host: "::1", port: 6379),
                    connectTimeout: .milliseconds(250)
                ),
            ]
        )
    }

    @Test func readsRoutesFromJSONWithDefaults() throws {
        let json = #"{"routes": [{"upstream": "127.0.0.1:6379", "connect_timeout": 2}]}"#
        let configuration = try ProxyConfiguration.parse(
            Data(json.utf8),
            path: "routes.json",
            defaultConnectTimeout: .seconds(9)
        )
        #expect(
            configuration.routes == [
                Route(
                    name: "default",
                    listen: Route.defaultListen,
                    upstream: .tcp(host: "127.0.0.1", port: 6379),
                    connectTimeout: .seconds(2)
                )
            ]
        )
    }

    @Test(arguments: [
        ("routes: []", "invalid config 'c.yaml': no routes: add a 'routes:' list"),
        ("{}", "invalid config 'c.yaml': no routes: add a 'routes:' list"),
        ("routes:\n  - name: a\n    listen: 127.0.0.1:0", "invalid config 'c.yaml': route 'a' has no 'upstream'"),
        (
            "routes:\n  - upstrem: 127.0.0.1:1",
            "invalid config 'c.yaml': unknown key 'upstrem' (expected one of: cert, connect_timeout, dns, insecure_upstream, key, listen, name, protocol, rules, tls, udp_idle_timeout, upstream, upstream_ca)"
        ),
        (
            "routes:\n  - upstream: 127.0.0.1",
            "invalid config 'c.yaml': route 1: invalid address '127.0.0.1': expected HOST:PORT or unix:/path"
        ),
        (
            "routes:\n  - {name: a, upstream: 127.0.0.1:1}\n  - {name: a, upstream: 127.0.0.1:2}",
            "invalid config 'c.yaml': route name 'a' is used twice"
        ),
        (
            "routes:\n  - {name: 'a b', upstream: 127.0.0.1:1}",
            "invalid config 'c.yaml': invalid route name 'a b': use letters, digits, '-', '_' or '.'"
        ),
        (
            "routes:\n  - {upstream: 127.0.0.1:1, connect_timeout: soon}",
            "invalid config 'c.yaml': route 1: invalid duration 'soon': use a number with ms, s, m, h or d, as 5s"
        ),
    ])
    func refusesBadConfigurationsInOneLine(text: String, message: String) {
        let error = #expect(throws: TapedeckError.self) {
            try ProxyConfiguration.parse(Data(text.utf8), path: "c.yaml")
        }
        #expect(error?.description == message)
    }

    @Test func malformedSyntaxIsOneLine() {
        for (text, path) in [("routes: [", "c.yaml"), ("{\"routes\": ", "c.json"), ("routes: 5", "c.yaml")] {
            let error = #expect(throws: TapedeckError.self) {
                try ProxyConfiguration.parse(Data(text.utf8), path: path)
            }
            #expect(error?.description.hasPrefix("invalid config '\(path)': ") == true)
            #expect(error?.description.contains("\n") == false)
        }
    }

    @Test func missingFileIsAClearError() {
        let error = #expect(throws: TapedeckError.self) {
            try ProxyConfiguration.load(path: "/nonexistent/routes.yaml")
        }
        #expect(error?.description == "cannot read config '/nonexistent/routes.yaml': no such file")
    }
}

extension ProxyConfigurationTests {
    @Test func readsEachRoutesRules() throws {
        let yaml = """
            routes:
              - name: s3
                upstream: 127.0.0.1:9000
                rules:
                  - preset: aws-sigv4
                  - volatile: 'X-Amz-Date: [0-9TZ]+'
                  - redact: 'token=([a-z0-9]+)'
                    scope: upstream
                    secret: api-token
              - name: plain
                upstream: 127.0.0.1:9001
            """
        let routes = try ProxyConfiguration.parse(Data(yaml.utf8), path: "rules.yaml").routes
        #expect(routes[0].rules.count == RulePreset.awsSigV4.rules.count + 2)
        #expect(routes[0].rules.prefix(RulePreset.awsSigV4.rules.count) == RulePreset.awsSigV4.rules[...])
        #expect(
            routes[0].rules.last
                == (try Rule(.redact, pattern: "token=([a-z0-9]+)", scope: .upstream, secret: "api-token"))
        )
        #expect(routes[1].rules.isEmpty)
    }

    @Test(arguments: [
        ("- volatile: '([a-z'", "rule 1: invalid regular expression '([a-z': it does not compile"),
        ("- preset: nope", "rule 1: unknown preset 'nope': use one of \(RulePreset.names)"),
        ("- volatile: a\n        redact: b", "rule 1: a rule needs exactly one of volatile, redact or preset"),
        ("- volatile: a\n        secret: s", "rule 1: only a redact rule names a secret"),
        ("- redact: a\n        scope: sideways", "rule 1: unknown scope 'sideways': use client, upstream or both"),
        (
            "- volatile: a\n        flavour: x",
            "rule 1: unknown rule key 'flavour' (expected volatile, redact or preset, with scope or secret)"
        ),
    ])
    func refusesBadRulesInOneLine(rule: String, message: String) {
        let yaml = "routes:\n  - upstream: 127.0.0.1:1\n    rules:\n      \(rule)\n"
        #expect {
            try ProxyConfiguration.parse(Data(yaml.utf8), path: "c.yaml")
        } throws: { error in
            "\(error)" == "invalid config 'c.yaml': route 1: \(message)"
        }
    }
}
