"""Signing in to a team server's studio with OpenID Connect, against a real provider.

The provider (tests/oidc/provider.py) is built on Authlib, an independent OAuth 2.0 / OpenID Connect
implementation from Debian's archive; nothing of Cairn's signs or checks a token on its side. The test plays
the browser: it follows the redirects with its own cookie jar, and tells the provider who signs in (the
password form a person would fill). It checks the flow end to end (PKCE, state, nonce), a group mapped to a
role, tokens the server must refuse, and a person disabled at the provider signed out at the next refresh.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse

import pytest

from conftest import CAIRN, wait_for

requests = pytest.importorskip("requests")
pytest.importorskip("authlib")
pytest.importorskip("flask")

PROVIDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oidc", "provider.py")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a team server runs as root")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def oidc():
    base = tempfile.mkdtemp(prefix="cairn-oidc-")
    os.chmod(base, 0o755)
    procs = []
    try:
        port = free_port()
        server_url = f"http://127.0.0.1:{port}"
        secret_file = os.path.join(base, "client-secret")
        with open(secret_file, "w") as f:
            f.write("s3cret-of-the-client\n")
        os.chmod(secret_file, 0o600)
        port_file = os.path.join(base, "provider.port")
        env = dict(os.environ, AUTHLIB_INSECURE_TRANSPORT="1")
        procs.append(subprocess.Popen([sys.executable if "authlib" in sys.modules else "/usr/bin/python3", PROVIDER,
                                       port_file, "cairn-studio", "s3cret-of-the-client",
                                       server_url + "/oidc/callback"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(base, "provider.log"), "w")))
        wait_for(lambda: os.path.exists(port_file), what="the OpenID provider to listen")
        issuer = "http://127.0.0.1:" + open(port_file).read().strip()
        workspace = os.path.join(base, "ws")
        senv = dict(os.environ)
        senv.pop("CAIRN_HOME", None)
        senv.update({"CAIRN_OIDC_ISSUER": issuer, "CAIRN_OIDC_CLIENT_ID": "cairn-studio",
                     "CAIRN_OIDC_CLIENT_SECRET_FILE": secret_file, "CAIRN_OIDC_REFRESH_SECONDS": "0"})
        procs.append(subprocess.Popen([CAIRN, "server", "--team", "--home", workspace, "--port", str(port)], env=senv,
                                      stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(base, "server.log"), "w")))
        wait_for(lambda: os.path.exists(os.path.join(workspace, "cairn.sock")), what="the team server")
        yield {"issuer": issuer, "server": server_url, "workspace": workspace}
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in ("server.log", "provider.log"):
            path = os.path.join(base, log)
            if os.path.exists(path):
                print(f"---- {log}\n" + open(path).read()[-3000:])
        shutil.rmtree(base, ignore_errors=True)


def root(o, *args):
    env = {"PATH": os.environ["PATH"], "HOME": "/root", "CAIRN_WORKSPACE": o["workspace"]}
    p = subprocess.run([CAIRN, *args], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p


def provider(o, path, body):
    r = requests.post(o["issuer"] + path, json=body, timeout=10)
    assert r.status_code == 200, r.text


def begin(o, browser):
    """The studio's sign-in link: the server sends the browser to the provider. The provider's URL."""
    r = browser.get(o["server"] + "/oidc/login?next=/%23/jobs", allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def at_provider(o, browser, authorize_url, who):
    """The person signs in at the provider, which sends the browser back: the callback URL."""
    provider(o, "/test/next-user", {"name": who})
    r = browser.get(authorize_url, allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text
    assert r.headers["Location"].startswith(o["server"] + "/oidc/callback?"), r.headers["Location"]
    return r.headers["Location"]


def sign_in(o, who):
    browser = requests.Session()
    callback = at_provider(o, browser, begin(o, browser), who)
    r = browser.get(callback, allow_redirects=False, timeout=10)
    return browser, r


def test_signing_in_with_the_provider_maps_groups_to_roles(oidc):
    o = oidc
    provider(o, "/test/users", {"name": "alice", "groups": ["ml-team", "staff"]})
    provider(o, "/test/users", {"name": "bob", "groups": ["visitors"]})
    root(o, "role", "assignment", "create", "--assignee", "ml-team", "--assignee-principal-type", "Group",
         "--role", "Contributor")
    # The studio's "not signed in" page asks how to sign in: this provider.
    assert requests.get(o["server"] + "/api/v1/sign-in", timeout=10).json()["issuer"] == o["issuer"]
    browser = requests.Session()
    authorize = begin(o, browser)
    # What went to the provider: this client, PKCE with S256, a state and a nonce; never the verifier.
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize).query))
    assert q["client_id"] == "cairn-studio" and q["response_type"] == "code"
    assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32 and "code_verifier" not in q
    assert "openid" in q["scope"].split()
    callback = at_provider(o, browser, authorize, "alice")
    r = browser.get(callback, allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == "/#/jobs", r.text
    assert "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
    me = browser.get(o["server"] + "/api/v1/whoami", timeout=10).json()
    assert me == {"name": "alice", "role": "Contributor", "via": "studio", "team": True}
    assert browser.get(o["server"] + "/api/v1/jobs", timeout=10).status_code == 200
    # Bob's groups have no role: refused, with the command that would give him one.
    bob, r = sign_in(o, "bob")
    assert r.status_code == 302
    r = bob.get(o["server"] + "/api/v1/jobs", timeout=10)
    assert r.status_code == 403 and "cairn role assignment create --assignee bob" in r.text, r.text
    audit = json.loads(root(o, "audit", "list", "--action", "session.oidc", "-o", "json").stdout)
    assert {e["target"] for e in audit} == {"alice", "bob"}


def test_the_server_refuses_what_it_did_not_ask_for(oidc):
    o = oidc
    provider(o, "/test/users", {"name": "alice", "groups": []})
    # A state the server never issued.
    browser = requests.Session()
    authorize = begin(o, browser)
    callback = at_provider(o, browser, authorize, "alice")
    forged = callback.replace("state=", "state=0")
    r = browser.get(forged, allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "state" in r.text
    # The right state in another browser (a link planted in someone else's): refused, and the state is spent.
    other = requests.Session()
    r = other.get(callback, allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "did not start this sign-in" in r.text, r.text
    r = browser.get(callback, allow_redirects=False, timeout=10)
    assert r.status_code == 403 and "already used" in r.text
    assert "cairn_session" not in browser.cookies and "cairn_session" not in other.cookies
    # ID tokens the provider gets wrong: signed with another key under the same key id, expired, with
    # another nonce, for another client.
    for mode, why in (("forge", "signature"), ("expired", "expired"), ("wrong_nonce", "nonce"),
                      ("wrong_audience", "another client")):
        provider(o, "/test/mode", {mode: True})
        b, r = sign_in(o, "alice")
        assert r.status_code == 403 and why in r.text, (mode, r.status_code, r.text)
        assert b.get(o["server"] + "/api/v1/whoami", timeout=10).status_code == 401
    provider(o, "/test/mode", {})
    b, r = sign_in(o, "alice")
    assert r.status_code == 302 and b.get(o["server"] + "/api/v1/whoami", timeout=10).status_code == 200


def test_a_person_disabled_at_the_provider_is_signed_out_at_the_next_refresh(oidc):
    o = oidc
    provider(o, "/test/users", {"name": "alice", "groups": []})
    root(o, "role", "assignment", "create", "--assignee", "alice", "--role", "Reader")
    b, r = sign_in(o, "alice")
    assert b.get(o["server"] + "/api/v1/jobs", timeout=10).status_code == 200
    # The refresh interval is 0 here: every request asks the provider again.
    assert b.get(o["server"] + "/api/v1/jobs", timeout=10).status_code == 200
    provider(o, "/test/users", {"name": "alice", "groups": [], "enabled": False})
    r = b.get(o["server"] + "/api/v1/jobs", timeout=10)
    assert r.status_code == 401, r.text
    # And the session is gone for good, even once she is enabled again.
    provider(o, "/test/users", {"name": "alice", "groups": [], "enabled": True})
    assert b.get(o["server"] + "/api/v1/jobs", timeout=10).status_code == 401
