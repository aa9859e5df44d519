//! Every setting's default, in one place: what `proxy.toml` may leave out.

use std::net::SocketAddr;
use std::time::Duration;

use super::{
    AdminConfig, ApiConfig, AuthFlow, CognitoConfig, Compatibility, Convention, ForwardAuthConfig,
    HeaderClaim, HealthConfig, IdentityConfig, LogConfig, LogFormat, ManagedLoginConfig,
    PrincipalKind, RateLimitConfig, ServerConfig, SessionConfig, SharedBackend, SharedConfig,
    UpstreamConfig, VerifyConfig,
};

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(25),
            max_connections: 16_384,
            idle_timeout: Duration::from_secs(60),
            max_tunnels: 1024,
            tunnel_idle_timeout: Duration::from_secs(300),
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            trusted_proxies: Vec::new(),
            trusted_forwarded_headers: vec!["x-forwarded-for".into(), "x-forwarded-proto".into()],
        }
    }
}

impl Default for CognitoConfig {
    fn default() -> Self {
        CognitoConfig {
            region: None,
            user_pool_id: None,
            client_id: None,
            client_secret: None,
            endpoint_url: None,
            auth_flow: AuthFlow::AdminUserPassword,
            timeout: Duration::from_secs(5),
            max_attempts: 2,
            refresh_token_rotation: false,
            context_data: true,
            propagate_user_context: false,
            server_name: None,
            choice_based_sign_in: false,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            prefix: "/api/user".into(),
            max_body_bytes: 16 * 1024,
            totp_issuer: "cognito-sidecar".into(),
            compatibility: Compatibility::None,
        }
    }
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            issuer: None,
            jwks_url: None,
            algorithm: "RS256".into(),
            token_use: vec!["access".into()],
            client_ids: Vec::new(),
            leeway: Duration::from_secs(5),
            max_token_bytes: 8 * 1024,
            jwks_refresh_interval: Duration::from_secs(15 * 60),
            jwks_cooldown: Duration::from_secs(10),
            jwks_timeout: Duration::from_secs(5),
            jwks_max_bytes: 64 * 1024,
            cache_max_entries: 100_000,
            revocation_ttl: Duration::from_secs(24 * 3600),
            pool_name: "default".into(),
            replica_regions: Vec::new(),
            pools: Vec::new(),
        }
    }
}

/// The default `upstream.never_forward` list.
pub const NEVER_FORWARD: &[&str] = &[
    // Re-routing: IIS URL Rewrite, Symfony < 4.1.3, zend-diactoros (CVE-2018-14773); nginx,
    // Traefik and Envoy auth conventions.
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-envoy-original-path",
    // Re-method: Rails/Rack, Symfony, Express method-override, Spring HiddenHttpMethodFilter.
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-forwarded-method",
    // Re-addressing: who the client is and how it connected.
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-url-scheme",
    "front-end-https",
    "x-real-ip",
    "true-client-ip",
    "client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "forwarded",
    "x-original-host",
    "x-host",
];

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: "http://127.0.0.1:3000".into(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(60),
            pool_idle_timeout: Duration::from_secs(4),
            pool_max_idle: 256,
            preserve_host: true,
            forward_authorization: true,
            forward_unverified_authorization: false,
            case_sensitive_paths: false,
            upgrades: vec!["websocket".into()],
            never_forward: NEVER_FORWARD.iter().map(|h| (*h).to_string()).collect(),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        use PrincipalKind::{Client, User};
        let h = |name: &str, claims: &[&str], principals: &[PrincipalKind]| HeaderClaim {
            name: name.into(),
            claims: claims.iter().map(|c| (*c).into()).collect(),
            principals: principals.to_vec(),
        };
        IdentityConfig {
            strip_prefixes: vec!["x-auth-".into()],
            headers: vec![
                h("X-Auth-Sub", &["sub"], &[User, Client]),
                h(
                    "X-Auth-Username",
                    &["username", "cognito:username"],
                    &[User],
                ),
                h("X-Auth-Groups", &["cognito:groups"], &[User]),
                h("X-Auth-Client-Id", &["client_id", "aud"], &[User, Client]),
                h("X-Auth-Scope", &["scope"], &[User, Client]),
                h("X-Auth-Email", &["email"], &[User]),
                h("X-Auth-Token-Use", &["token_use"], &[User, Client]),
            ],
            claims_header: None,
            principal_header: "X-Auth-Principal".into(),
        }
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            live_path: "/healthz".into(),
            ready_path: "/readyz".into(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
            access: true,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            address_per_minute: 60,
            address_burst: 20,
            username_per_minute: 10,
            username_burst: 5,
            recovery_username_per_hour: 5,
            recovery_username_burst: 3,
            recovery_address_per_hour: 30,
            recovery_address_burst: 10,
            max_tracked: 100_000,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            enabled: false,
            prefix: "/_auth".into(),
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            refresh_margin: Duration::from_secs(60),
            max_sessions: 100_000,
            after_sign_out: "/_auth/sign-in".into(),
            allowed_origins: Vec::new(),
            forward_access_token: false,
            title: "Sign in".into(),
            logo_url: None,
            templates_dir: None,
            password_policy: None,
            read_password_policy: true,
            sign_in_codes: None,
            device_fingerprint: false,
            managed_login: ManagedLoginConfig::default(),
        }
    }
}

impl Default for ManagedLoginConfig {
    fn default() -> Self {
        ManagedLoginConfig {
            domain: None,
            callback_url: None,
            sign_out_url: None,
            identity_providers: Vec::new(),
            other_ways: false,
            auto_redirect: false,
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            flow_timeout: Duration::from_secs(5 * 60),
            timeout: Duration::from_secs(5),
        }
    }
}

impl Default for ForwardAuthConfig {
    fn default() -> Self {
        ForwardAuthConfig {
            enabled: false,
            path: "/_auth/check".into(),
            convention: Convention::Nginx,
            listen: None,
        }
    }
}

impl Default for SharedConfig {
    fn default() -> Self {
        SharedConfig {
            backend: SharedBackend::Memory,
            url: "redis://127.0.0.1:6379".into(),
            username: None,
            password: None,
            tls_ca_file: None,
            key_prefix: "cognito-sidecar".into(),
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_millis(500),
            queue_max: 10_000,
            require_for_ready: false,
        }
    }
}
