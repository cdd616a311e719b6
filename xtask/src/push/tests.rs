//! What `push` decides without a registry: which registries get plain HTTP, whose
//! credentials it uses, and that an error is one line without the password. The
//! pushes themselves are tested against a real registry in harness/tests/registry.rs.

use super::*;
use base64::Engine;

#[test]
fn only_loopback_registries_get_plain_http() {
    for loopback in [
        "127.0.0.1:5000",
        "localhost:5000",
        "localhost",
        "[::1]:5000",
        "127.9.9.9",
    ] {
        assert!(is_loopback(loopback), "{loopback}");
    }
    for remote in [
        "registry.example.com",
        "10.0.0.1:5000",
        "ghcr.io",
        "[2001:db8::1]:443",
        "localhost.example.com",
    ] {
        assert!(!is_loopback(remote), "{remote}");
    }
}

fn config(auths: &str) -> String {
    format!("{{\"auths\": {auths}, \"credsStore\": \"desktop\"}}")
}

#[test]
fn credentials_come_from_the_variables_else_the_docker_config() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let path = Path::new("/home/u/.docker/config.json");
    let text = config(&format!(
        "{{\"https://index.docker.io/v1/\": {{\"auth\": \"{}\"}}, \"127.0.0.1:5000\": {{\"auth\": \"{}\"}}, \"r.example.com\": {{\"username\": \"u\", \"password\": \"p:q\"}}, \"helper.example.com\": {{}}}}",
        b64("hub:hubpass"),
        b64("local:pa:ss")
    ));
    let c = Credentials::new(None, None, Some((path, &text))).unwrap();
    let login = |registry: &str| c.for_registry(registry).1.map(|l| (l.user, l.password));
    assert_eq!(login("docker.io"), Some(("hub".into(), "hubpass".into())));
    assert_eq!(
        login("127.0.0.1:5000"),
        Some(("local".into(), "pa:ss".into()))
    );
    assert_eq!(login("R.example.com"), Some(("u".into(), "p:q".into())));
    assert_eq!(login("helper.example.com"), None);
    assert_eq!(login("other.example.com"), None);
    assert!(matches!(
        c.for_registry("other.example.com").0,
        RegistryAuth::Anonymous
    ));
    assert_eq!(
        c.for_registry("127.0.0.1:5000").1.unwrap().source,
        "/home/u/.docker/config.json auths.127.0.0.1:5000"
    );

    let env = Credentials::new(
        Some("ci".into()),
        Some("secret".into()),
        Some((path, &text)),
    )
    .unwrap();
    let l = env.for_registry("127.0.0.1:5000").1.unwrap();
    assert_eq!((l.user.as_str(), l.password.as_str()), ("ci", "secret"));
    assert_eq!(l.source, format!("{USERNAME_VAR}/{PASSWORD_VAR}"));

    assert_eq!(
        Credentials::new(Some("ci".into()), None, None).unwrap_err(),
        format!("push: set both {USERNAME_VAR} and {PASSWORD_VAR}, or neither")
    );
    let bad = config(&format!(
        "{{\"r\": {{\"auth\": \"{}\"}}}}",
        b64("no-colon-secret")
    ));
    let err = Credentials::new(None, None, Some((path, &bad))).unwrap_err();
    assert_eq!(
        err,
        "/home/u/.docker/config.json: auths.r.auth: not base64 of user:password"
    );
    let err = Credentials::new(None, None, Some((path, "{"))).unwrap_err();
    assert!(
        err.starts_with("/home/u/.docker/config.json: not JSON: "),
        "{err}"
    );
}

#[test]
fn an_error_is_one_line_that_never_holds_the_password() {
    let reference: Reference = "127.0.0.1:5000/mesh/chain:0.1.0".parse().unwrap();
    let login = Login {
        user: "ci".into(),
        password: "hunter2".into(),
        source: "env".into(),
    };
    let auth = (
        RegistryAuth::Basic("ci".into(), "hunter2".into()),
        Some(login),
    );
    let e = OciDistributionError::ServerError {
        code: 401,
        url: "http://127.0.0.1:5000/v2/".into(),
        message: "bad password hunter2\nretry".into(),
    };
    assert_eq!(
        explain(e, &reference, &auth, "hint"),
        "push oci://127.0.0.1:5000/mesh/chain:0.1.0: 127.0.0.1:5000 refused the login for user 'ci' (credentials from env)"
    );
    let e = OciDistributionError::ServerError {
        code: 500,
        url: "u".into(),
        message: "echoed hunter2\nsecond line".into(),
    };
    let line = explain(e, &reference, &auth, "hint");
    assert!(!line.contains("hunter2") && !line.contains('\n'), "{line}");
    let e = OciDistributionError::ServerError {
        code: 404,
        url: "u".into(),
        message: String::new(),
    };
    assert_eq!(
        explain(e, &reference, &(RegistryAuth::Anonymous, None), "hint"),
        "push oci://127.0.0.1:5000/mesh/chain:0.1.0: 127.0.0.1:5000 has no repository 127.0.0.1:5000/mesh/chain (or refuses that name): check the gateway's url"
    );
    let e = OciDistributionError::UnauthorizedError { url: "u".into() };
    assert_eq!(
        explain(e, &reference, &(RegistryAuth::Anonymous, None), "set X"),
        "push oci://127.0.0.1:5000/mesh/chain:0.1.0: 127.0.0.1:5000 refused the login without credentials: set X"
    );
}
