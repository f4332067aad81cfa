"""A real OpenID Connect provider for the team server's tests, built on Authlib (Debian's python3-authlib)
and Flask: discovery, the authorization code flow with PKCE required, ID tokens signed RS256 with a key
published at its JWKS address, refresh tokens, and users that can be disabled.

Nothing in here is Cairn's code: it is the provider a team would run (Keycloak, Dex, Entra ID), reduced to
what the tests need. Who signs in at the next authorization request stands in for a person typing their
password (POST /test/next-user); /test/mode makes it misbehave (a token signed with another key, an expired
one, another nonce, another audience) so the tests can see the server refuse it.

Run: provider.py PORT_FILE CLIENT_ID CLIENT_SECRET REDIRECT_URI; it writes its port to PORT_FILE once it
listens on 127.0.0.1.
"""
import json
import sys
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.jose import JsonWebKey, jwt
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

PORT_FILE, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI = sys.argv[1:5]

app = Flask(__name__)
app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
KEY = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "k1"})
# Another key under the same key id: a token it signs must be refused, whatever its header says.
FORGER = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "k1"})
state = {"issuer": "", "next_user": None, "mode": {}, "last_authorize": {}}
users = {}  # name -> {"groups": [...], "enabled": bool}
codes = {}
tokens = {}  # refresh token -> record


class Client(ClientMixin):
    def get_client_id(self):
        return CLIENT_ID

    def get_default_redirect_uri(self):
        return REDIRECT_URI

    def get_allowed_scope(self, scope):
        return " ".join(s for s in scope.split() if s in ("openid", "profile", "groups", "offline_access"))

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri == REDIRECT_URI

    def check_client_secret(self, client_secret):
        return client_secret == CLIENT_SECRET

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token")


CLIENT = Client()


class Code:
    def __init__(self, code, user, data):
        self.code, self.user, self.data, self.at = code, user, data, int(time.time())

    def get_redirect_uri(self):
        return self.data.get("redirect_uri")

    def get_scope(self):
        return self.data.get("scope", "")

    def get_nonce(self):
        return self.data.get("nonce")

    def get_auth_time(self):
        return self.at

    def get_acr(self):
        return None

    def get_amr(self):
        return None

    def is_expired(self):
        return time.time() - self.at > 300


class Token:
    def __init__(self, user, scope):
        self.user, self.scope, self.revoked = user, scope, False

    def check_client(self, client):
        return client.get_client_id() == CLIENT_ID

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return 3600

    def is_expired(self):
        return False

    def is_revoked(self):
        return self.revoked


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def save_authorization_code(self, code, req):
        codes[code] = Code(code, req.user, {
            "redirect_uri": req.redirect_uri, "scope": req.scope, "nonce": req.data.get("nonce"),
            "code_challenge": req.data.get("code_challenge"),
            "code_challenge_method": req.data.get("code_challenge_method")})

    def query_authorization_code(self, code, client):
        c = codes.get(code)
        if c and not c.is_expired():
            c.code_challenge = c.data["code_challenge"]
            c.code_challenge_method = c.data["code_challenge_method"]
            return c
        return None

    def delete_authorization_code(self, c):
        codes.pop(c.code, None)

    def authenticate_user(self, c):
        return c.user if users.get(c.user, {}).get("enabled") else None


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        t = tokens.get(refresh_token)
        return t if t and not t.revoked else None

    def authenticate_user(self, t):
        # A disabled person's refresh is refused: their sessions end at the next refresh.
        return t.user if users.get(t.user, {}).get("enabled") else None

    def revoke_old_credential(self, t):
        t.revoked = True


class IdToken(OpenIDCode):
    def exists_nonce(self, nonce, req):
        return False

    def get_jwt_config(self, grant):
        return {"key": KEY.as_dict(is_private=True), "alg": "RS256", "iss": state["issuer"], "exp": 3600}

    def generate_user_info(self, user, scope):
        return UserInfo(sub="sub-" + user, preferred_username=user, groups=users[user]["groups"])

    def process_token(self, grant, token):
        token = super().process_token(grant, token)
        mode = state["mode"]
        if "id_token" in token and mode:
            claims = dict(jwt.decode(token["id_token"], KEY.as_dict()))
            if mode.get("expired"):
                claims["exp"] = int(time.time()) - 600
                claims["iat"] = int(time.time()) - 4200
            if mode.get("wrong_nonce"):
                claims["nonce"] = "not-the-one-sent"
            if mode.get("wrong_audience"):
                claims["aud"] = ["another-client"]
            key = FORGER if mode.get("forge") else KEY
            token["id_token"] = jwt.encode({"alg": "RS256", "kid": "k1"}, claims,
                                           key.as_dict(is_private=True)).decode()
        return token


def save_token(token, req):
    if "refresh_token" in token:
        tokens[token["refresh_token"]] = Token(req.user, token.get("scope", ""))


server = AuthorizationServer(app, query_client=lambda cid: CLIENT if cid == CLIENT_ID else None,
                             save_token=save_token)
server.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True), IdToken(require_nonce=True)])
server.register_grant(RefreshTokenGrant)


@app.route("/.well-known/openid-configuration")
def discovery():
    base = state["issuer"]
    return jsonify({"issuer": base, "authorization_endpoint": base + "/authorize", "token_endpoint": base + "/token",
                    "jwks_uri": base + "/jwks", "response_types_supported": ["code"],
                    "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"]})


@app.route("/jwks")
def jwks():
    return jsonify({"keys": [KEY.as_dict()]})


@app.route("/authorize")
def authorize():
    state["last_authorize"] = dict(request.args)
    user = state["next_user"]
    if not user or not users.get(user, {}).get("enabled"):
        return server.create_authorization_response(grant_user=None)
    return server.create_authorization_response(grant_user=user)


@app.route("/token", methods=["POST"])
def token():
    return server.create_token_response()


@app.route("/test/users", methods=["POST"])
def test_users():
    body = request.get_json()
    users[body["name"]] = {"groups": body.get("groups", []), "enabled": body.get("enabled", True)}
    return jsonify(users[body["name"]])


@app.route("/test/next-user", methods=["POST"])
def test_next_user():
    state["next_user"] = request.get_json()["name"]
    return jsonify({})


@app.route("/test/mode", methods=["POST"])
def test_mode():
    state["mode"] = request.get_json()
    return jsonify({})


@app.route("/test/last-authorize")
def test_last_authorize():
    return jsonify(state["last_authorize"])


if __name__ == "__main__":
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    state["issuer"] = f"http://127.0.0.1:{srv.server_port}"
    with open(PORT_FILE + ".tmp", "w") as f:
        f.write(str(srv.server_port))
    import os
    os.rename(PORT_FILE + ".tmp", PORT_FILE)
    srv.serve_forever()
