import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOSSL
import SwiftASN1
import X509

/// The TLS contexts a deck hands out, made once and shared by every connection: one per name and ALPN protocol
/// toward clients (a leaf of the local CA, or the route's fixed certificate), and one per route and ALPN offer
/// toward upstreams.
///
/// A context costs far more to make than a connection's handshake, so connections never make their own.
public final class TLSContexts: Sendable {
    /// The CA whose leaves are served; loaded (or created) when first needed.
    private let authorityDirectory: String
    private let authority = NIOLockedValueBox<CertificateAuthority?>(nil)
    private let serverContexts = NIOLockedValueBox<[ServerKey: NIOSSLContext]>([:])
    private let clientContexts = NIOLockedValueBox<[ClientKey: NIOSSLContext]>([:])

    private struct ServerKey: Hashable {
        var name: String
        var applicationProtocols: [String]
        var certificate: String?
        var key: String?
    }

    private struct ClientKey: Hashable {
        var upstreamCA: String?
        var insecure: Bool
        var applicationProtocols: [String]
    }

    /// Creates contexts served from the CA in `authorityDirectory` (made there on first use).
    public init(authorityDirectory: String) {
        self.authorityDirectory = authorityDirectory
    }

    /// The local CA, loaded or created on first use.
    ///
    /// - Throws: ``TapedeckError`` when the CA directory cannot be read or written.
    public func certificateAuthority() throws -> CertificateAuthority {
        try authority.withLockedValue { authority in
            if let authority { return authority }
            let loaded = try CertificateAuthority.loadOrCreate(in: authorityDirectory)
            authority = loaded
            return loaded
        }
    }

    /// The context that completes a client's handshake for `name`, choosing among `applicationProtocols`.
    ///
    /// - Parameters:
    ///   - name: The name the client asked for (SNI), or the route's host; the leaf is made for it.
    ///   - applicationProtocols: The ALPN protocols to accept, in preference order; empty negotiates none.
    ///   - settings: The route's settings; a fixed certificate there replaces the CA's leaf.
    func server(name: String, applicationProtocols: [String], settings: TLSSettings) throws -> NIOSSLContext {
        let key = ServerKey(
            name: settings.certificate == nil ? name : "",
            applicationProtocols: applicationProtocols,
            certificate: settings.certificate,
            key: settings.key
        )
        if let context = serverContexts.withLockedValue({ $0[key] }) { return context }
        var configuration: TLSConfiguration
        if let certificatePath = settings.certificate, let keyPath = settings.key {
            do {
                configuration = TLSConfiguration.makeServerConfiguration(
                    certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) },
                    privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem))
                )
            } catch {
                throw TapedeckError(
                    .invalidConfiguration,
                    "cannot load --cert '\(certificatePath)' and --key '\(keyPath)': \(TLSFailure.describe(error))"
                )
            }
        } else {
            let leaf = try certificateAuthority().leaf(for: name)
            configuration = TLSConfiguration.makeServerConfiguration(
                certificateChain: [
                    .certificate(try Self.nioCertificate(leaf.certificate)),
                    .certificate(try Self.nioCertificate(leaf.issuer)),
                ],
                privateKey: .privateKey(
                    try NIOSSLPrivateKey(bytes: Array(leaf.privateKey.pemRepresentation.utf8), format: .pem)
                )
            )
        }
        configuration.applicationProtocols = applicationProtocols
        let context = try NIOSSLContext(configuration: configuration)
        serverContexts.withLockedValue { $0[key] = context }
        return context
    }

    /// The context that originates TLS to an upstream, offering `applicationProtocols`.
    func client(applicationProtocols: [String], settings: TLSSettings) throws -> NIOSSLContext {
        let key = ClientKey(
            upstreamCA: settings.upstreamCA,
            insecure: settings.insecureUpstream,
            applicationProtocols: applicationProtocols
        )
        if let context = clientContexts.withLockedValue({ $0[key] }) { return context }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if settings.insecureUpstream { configuration.certificateVerification = .none }
        if let upstreamCA = settings.upstreamCA { configuration.additionalTrustRoots = [.file(upstreamCA)] }
        configuration.applicationProtocols = applicationProtocols
        let context: NIOSSLContext
        do {
            context = try NIOSSLContext(configuration: configuration)
        } catch {
            throw TapedeckError(
                .invalidConfiguration,
                "cannot load --upstream-ca '\(settings.upstreamCA ?? "")': \(TLSFailure.describe(error))"
            )
        }
        clientContexts.withLockedValue { $0[key] = context }
        return context
    }

    /// A swift-certificates certificate as NIOSSL takes it.
    static func nioCertificate(_ certificate: Certificate) throws -> NIOSSLCertificate {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
    }

    /// A peer's certificate as the tape records it: its subject, and the SHA-256 of its DER bytes in hex.
    static func describe(_ certificate: NIOSSLCertificate) -> (subject: String, fingerprint: String)? {
        guard let der = try? certificate.toDERBytes() else { return nil }
        let fingerprint = SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
        let subject = (try? Certificate(derEncoded: der)).map { "\($0.subject)" } ?? ""
        return (subject, fingerprint)
    }
}
