// A loopback OpenID provider that plays AWS Cognito's managed-login domain
// (Hosted UI) for integration tests. Built on oidc-provider 9.x.
// Nothing here is for production: keys, cookies, sessions and users live in
// memory and die with the process.
//
// Environment:
//   OIDC_PORT           listen on 127.0.0.1:OIDC_PORT (required)
//   OIDC_ISSUER         `iss` (default http://127.0.0.1:OIDC_PORT); may have a path
//                       such as /us-east-1_Federated: the routes below stay at the
//                       root, discovery and JWKS are also served under the issuer
//   OIDC_CLIENT_ID      the one app client (required)
//   OIDC_CLIENT_SECRET  optional: client_secret_basic with it, public client (none) without
//   OIDC_REDIRECT_URIS  comma-separated callback URLs (required)
//   OIDC_LOGOUT_URIS    comma-separated allowed sign-out URLs for /logout
//   OIDC_SCOPES         allowed scopes (default "openid email profile")
//   OIDC_IDPS           allowed identity_provider names (default "Okta,Google")
//   OIDC_ACCESS_TTL     access and ID token lifetime in seconds (default 3600)
//
// Endpoints: /oauth2/authorize, /oauth2/token, /oauth2/userInfo, /oauth2/revoke,
// /.well-known/jwks.json, /.well-known/openid-configuration, /login/:uid (sign-in
// page), GET /logout, GET /_test/events (authorize, sign_in, token, revoke, logout, ...),
// POST /_test/reset.

import * as crypto from 'node:crypto';
import * as querystring from 'node:querystring';

import Provider, { errors, interactionPolicy } from 'oidc-provider';

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

function list(value, fallback = '') {
  return (value ?? fallback).split(',').map((s) => s.trim()).filter(Boolean);
}

const PORT = Number.parseInt(process.env.OIDC_PORT ?? '', 10);
if (!Number.isInteger(PORT) || PORT <= 0 || PORT > 65535) fail('OIDC_PORT must be a port number');

const ISSUER = (process.env.OIDC_ISSUER || `http://127.0.0.1:${PORT}`).replace(/\/+$/, '');
const ISSUER_PATH = new URL(ISSUER).pathname.replace(/\/+$/, ''); // '' when the issuer has no path

const CLIENT_ID = process.env.OIDC_CLIENT_ID || fail('OIDC_CLIENT_ID is required');
const CLIENT_SECRET = process.env.OIDC_CLIENT_SECRET || undefined;
const REDIRECT_URIS = list(process.env.OIDC_REDIRECT_URIS);
if (REDIRECT_URIS.length === 0) fail('OIDC_REDIRECT_URIS is required (comma-separated)');
const LOGOUT_URIS = list(process.env.OIDC_LOGOUT_URIS);
const SCOPES = (process.env.OIDC_SCOPES || 'openid email profile').split(/[\s,]+/).filter(Boolean);
if (!SCOPES.includes('openid')) SCOPES.unshift('openid');
const IDPS = list(process.env.OIDC_IDPS, 'Okta,Google');
const ACCESS_TTL = Number.parseInt(process.env.OIDC_ACCESS_TTL || '3600', 10);
if (!Number.isInteger(ACCESS_TTL) || ACCESS_TTL <= 0) fail('OIDC_ACCESS_TTL must be a positive integer');

// Cognito's provider types for the built-in social IdPs; anything else is OIDC.
const PROVIDER_TYPES = {
  Google: 'Google',
  Facebook: 'Facebook',
  LoginWithAmazon: 'LoginWithAmazon',
  SignInWithApple: 'SignInWithApple',
};

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

const PASSWORD = 'Fed3rated!pass';
const USERS = new Map([
  ['alice@example.com', {
    password: PASSWORD, groups: ['staff'], given_name: 'Alice', family_name: 'Example',
  }],
  ['bob@example.com', {
    password: PASSWORD, groups: [], given_name: 'Bob', family_name: 'Example',
  }],
  ['carol@example.com', {
    password: PASSWORD, groups: ['admin', 'staff'], given_name: 'Carol', family_name: 'Example',
  }],
]);

// A stable UUID (v4 layout) derived from a string.
function uuidFrom(seed) {
  const b = crypto.createHash('sha256').update(`cognito-sidecar-oidc-harness:${seed}`).digest().subarray(0, 16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// User pool accounts: one per (user, identity provider), plus the user
// without identity provider. Cognito username: `${idp}_${email}` for a
// federated sign-in, the email otherwise. oidc-provider's accountId is the
// `sub`, a UUID that is stable per Cognito username.
const ACCOUNTS = new Map();
for (const [email, user] of USERS) {
  for (const idp of [null, ...IDPS]) {
    const username = idp ? `${idp}_${email}` : email;
    const sub = uuidFrom(username);
    ACCOUNTS.set(sub, {
      accountId: sub,
      sub,
      username,
      email,
      idp,
      groups: user.groups,
      given_name: user.given_name,
      family_name: user.family_name,
      identities: idp ? [{
        userId: email,
        providerName: idp,
        providerType: PROVIDER_TYPES[idp] ?? 'OIDC',
        issuer: null,
        primary: 'true',
        dateCreated: '1700000000000',
      }] : undefined,
    });
  }
}
const accountProfile = (accountId) => ACCOUNTS.get(accountId);

async function findAccount(_ctx, id) {
  const profile = accountProfile(id);
  if (!profile) return undefined;
  return {
    accountId: id,
    async claims(use) {
      const claims = {
        sub: profile.sub,
        email: profile.email,
        name: `${profile.given_name} ${profile.family_name}`,
        given_name: profile.given_name,
        family_name: profile.family_name,
      };
      if (use === 'id_token') {
        claims.token_use = 'id';
        claims['cognito:username'] = profile.username;
        claims.email_verified = true;
        if (profile.groups.length) claims['cognito:groups'] = profile.groups;
        if (profile.identities) claims.identities = profile.identities;
      } else {
        // Cognito's /oauth2/userInfo: `username`, string booleans, identities as a JSON string.
        claims.username = profile.username;
        claims.email_verified = 'true';
        if (profile.identities) claims.identities = JSON.stringify(profile.identities);
      }
      return claims;
    },
  };
}

// ---------------------------------------------------------------------------
// Keys and JWT helpers (RS256)
// ---------------------------------------------------------------------------

const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const publicJwk = publicKey.export({ format: 'jwk' });
const KID = crypto.createHash('sha256')
  .update(JSON.stringify({ e: publicJwk.e, kty: publicJwk.kty, n: publicJwk.n }))
  .digest('base64url');
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig',
};

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');

function signJwt(header, payload) {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const sig = crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url');
  return `${input}.${sig}`;
}

function decodeJwt(token) {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url')),
    payload: JSON.parse(Buffer.from(p, 'base64url')),
  };
}

// Verifies a JWT this process signed; returns its payload or undefined.
function verifyOwnJwt(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const ok = crypto.verify(
      'sha256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      publicKey,
      Buffer.from(parts[2], 'base64url'),
    );
    if (!ok) return undefined;
    const { header, payload } = decodeJwt(token);
    if (header.alg !== 'RS256' || header.kid !== KID) return undefined;
    return payload;
  } catch {
    return undefined;
  }
}

function halfHash(value) {
  const digest = crypto.createHash('sha256').update(value).digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

// ---------------------------------------------------------------------------
// Test introspection
// ---------------------------------------------------------------------------

let events = [];
const record = (event) => { events.push(event); };

// ---------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------

function esc(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>
body{font-family:system-ui,sans-serif;background:#f2f3f3;margin:0;padding:40px 0}
main{max-width:360px;margin:0 auto;background:#fff;padding:24px 32px;border-radius:4px;box-shadow:0 1px 3px rgba(0,0,0,.2)}
h1{font-size:1.3em;font-weight:500}label{display:block;margin:12px 0 4px}
input{width:100%;box-sizing:border-box;padding:8px}button{margin-top:16px;padding:8px 16px}
.error{color:#b00020}
</style>
</head>
<body><main>
${body}
</main></body>
</html>`;
}

function signInPage({ uid, idp, username = '', error }) {
  const title = idp ? `Sign in with ${idp}` : 'Cognito managed login';
  return page(title, `<h1 id="title">${esc(title)}</h1>
${error ? `<p id="error" class="error" role="alert">${esc(error)}</p>` : ''}
<form id="sign-in-form" method="post" action="/login/${esc(uid)}" autocomplete="off">
<label for="username">Email</label>
<input id="username" name="username" type="text" inputmode="email" autocomplete="username" required autofocus value="${esc(username)}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="sign-in" type="submit">Sign in</button>
</form>
<form id="cancel-form" method="post" action="/login/${esc(uid)}/cancel">
<button id="cancel" type="submit">Cancel</button>
</form>`);
}

function errorPage(title, message) {
  return page(title, `<h1 id="title">${esc(title)}</h1><p id="error" class="error">${esc(message)}</p>`);
}

async function readForm(ctx) {
  const chunks = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += chunk.length;
    if (size > 64 * 1024) ctx.throw(413);
    chunks.push(chunk);
  }
  return querystring.parse(Buffer.concat(chunks).toString('utf8'));
}

const str = (v) => (typeof v === 'string' ? v : undefined);

// ---------------------------------------------------------------------------
// Provider
// ---------------------------------------------------------------------------

const policy = interactionPolicy.base();
// A different identity_provider than the one the session signed in with
// needs a new sign-in (Cognito would send the user to that other IdP).
policy.get('login').checks.push(new interactionPolicy.Check(
  'identity_provider_changed',
  'a different identity provider was requested',
  'login_required',
  (ctx) => {
    const requested = ctx.oidc.params.identity_provider;
    const { accountId } = ctx.oidc.session;
    if (!requested || !accountId) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    return accountProfile(accountId)?.idp === requested
      ? interactionPolicy.Check.NO_NEED_TO_PROMPT
      : interactionPolicy.Check.REQUEST_PROMPT;
  },
));

const client = {
  client_id: CLIENT_ID,
  redirect_uris: REDIRECT_URIS,
  response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token'],
  scope: SCOPES.join(' '),
  id_token_signed_response_alg: 'RS256',
  require_auth_time: true,
  ...(CLIENT_SECRET
    ? { client_secret: CLIENT_SECRET, token_endpoint_auth_method: 'client_secret_basic' }
    : { token_endpoint_auth_method: 'none' }),
};

const provider = new Provider(ISSUER, {
  clients: [client],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  routes: {
    authorization: '/oauth2/authorize',
    token: '/oauth2/token',
    userinfo: '/oauth2/userInfo',
    jwks: '/.well-known/jwks.json',
    revocation: '/oauth2/revoke',
    // Not Cognito endpoints (the features are off); kept out of the way.
    end_session: '/_oidc/session/end',
    introspection: '/_oidc/token/introspection',
    pushed_authorization_request: '/_oidc/request',
  },
  scopes: SCOPES,
  responseTypes: ['code'],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
  claims: {
    openid: ['sub', 'token_use', 'cognito:username', 'cognito:groups', 'identities', 'username'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
  },
  // Scope claims belong in the ID token too, as in Cognito.
  conformIdTokenClaims: false,
  extraParams: {
    async identity_provider(ctx, value) {
      if (value !== undefined && !IDPS.includes(value)) {
        throw new errors.InvalidRequest(`identity_provider ${value} is not configured for this client`);
      }
      // Cognito refuses scopes the app client does not allow (oidc-provider would drop them).
      const raw = typeof ctx.query.scope === 'string' ? ctx.query.scope : '';
      const unknown = raw.split(' ').filter((s) => s && !SCOPES.includes(s));
      if (unknown.length) throw new errors.InvalidScope(`scope not allowed for this client: ${unknown.join(' ')}`, unknown.join(' '));
    },
  },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    dPoP: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
    resourceIndicators: { enabled: false },
    rpInitiatedLogout: { enabled: false },
    userinfo: { enabled: true },
    revocation: {
      enabled: true,
      allowedPolicy: async (_ctx, c, token) => token.clientId === c.clientId,
    },
  },
  interactions: {
    policy,
    url: (_ctx, interaction) => `/login/${interaction.uid}`,
  },
  async loadExistingGrant(ctx) {
    // First-party client: every requested scope is granted, consent is never asked.
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    if (grant && grant.accountId !== oidc.account.accountId) grant = undefined;
    grant ??= new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.account.accountId });
    grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(' '));
    const claims = [...oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    await grant.save();
    return grant;
  },
  findAccount,
  issueRefreshToken: async (_ctx, c) => c.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: false,
  expiresWithSession: async () => false,
  clientBasedCORS: () => true,
  ttl: {
    AccessToken: ACCESS_TTL,
    IdToken: ACCESS_TTL,
    AuthorizationCode: 300,
    RefreshToken: 30 * 24 * 3600,
    Grant: 30 * 24 * 3600,
    Interaction: 3600,
    Session: 3600,
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = errorPage('Something went wrong', `${out.error}: ${out.error_description ?? ''}`);
  },
});

// ---------------------------------------------------------------------------
// Middleware (runs before oidc-provider's own router, in this order)
// ---------------------------------------------------------------------------

// One log line per request: method, path (never the query string), status.
provider.use(async (ctx, next) => {
  const started = Date.now();
  const { method, path } = ctx;
  try {
    await next();
  } finally {
    process.stdout.write(`${new Date().toISOString()} ${method} ${path} ${ctx.status} ${Date.now() - started}ms\n`);
  }
});

// Test introspection.
provider.use(async (ctx, next) => {
  if (ctx.path === '/_test/events' && ctx.method === 'GET') {
    ctx.set('cache-control', 'no-store');
    ctx.body = events;
    return;
  }
  if (ctx.path === '/_test/reset' && ctx.method === 'POST') {
    events = [];
    ctx.status = 204;
    return;
  }
  await next();
});

// Cognito publishes discovery and the JWKS under the issuer
// (`<issuer>/.well-known/...`); the managed-login routes are at the root.
provider.use(async (ctx, next) => {
  if (ISSUER_PATH && ctx.path.startsWith(`${ISSUER_PATH}/.well-known/`)) {
    const rest = ctx.path.slice(ISSUER_PATH.length);
    if (rest === '/.well-known/jwks.json' || rest === '/.well-known/openid-configuration') {
      ctx.path = rest;
    }
  }
  await next();
  if (ctx.path === '/.well-known/openid-configuration' && ctx.status === 200 && ctx.body) {
    ctx.body.jwks_uri = `${ISSUER}/.well-known/jwks.json`;
  }
});

// Record authorization requests (the first leg; resumes are /oauth2/authorize/:uid).
provider.use(async (ctx, next) => {
  if (ctx.path === '/oauth2/authorize' && ctx.method === 'GET') {
    const q = ctx.query;
    record({
      event: 'authorize',
      identity_provider: str(q.identity_provider) ?? null,
      scope: str(q.scope) ?? null,
      has_nonce: typeof q.nonce === 'string' && q.nonce.length > 0,
      code_challenge_method: str(q.code_challenge_method) ?? null,
    });
  }
  await next();
});

// Sign-in pages (custom interactions).
provider.use(async (ctx, next) => {
  const m = /^\/login\/([A-Za-z0-9_-]+)(\/cancel)?$/.exec(ctx.path);
  if (!m) return next();
  const [, uid, cancel] = m;
  ctx.set('cache-control', 'no-store');

  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = errorPage('Sign-in expired', 'This sign-in request is no longer valid. Start again from the application.');
    return;
  }
  if (details.uid !== uid) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = errorPage('Sign-in expired', 'This sign-in request does not match your browser session.');
    return;
  }
  const idp = details.params.identity_provider ?? null;

  const finish = async (result) => {
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(returnTo);
  };

  if (details.prompt.name !== 'login') {
    // Consent is never asked (loadExistingGrant grants everything); finish defensively.
    if (ctx.method !== 'GET' && ctx.method !== 'POST') ctx.throw(405);
    const grant = new provider.Grant({ clientId: details.params.client_id, accountId: details.session.accountId });
    grant.addOIDCScope(details.params.scope ?? 'openid');
    await finish({ consent: { grantId: await grant.save() } });
    return;
  }

  if (ctx.method === 'GET' && !cancel) {
    ctx.type = 'html';
    ctx.body = signInPage({ uid, idp });
    return;
  }
  if (ctx.method !== 'POST') ctx.throw(405);

  if (cancel) {
    record({ event: 'cancel', identity_provider: idp });
    await finish({ error: 'access_denied', error_description: 'User cancelled the sign-in' });
    return;
  }

  const form = await readForm(ctx);
  const username = (str(form.username) ?? '').trim().toLowerCase();
  const password = str(form.password) ?? '';
  const user = USERS.get(username);
  if (!user || user.password !== password) {
    record({ event: 'sign_in_failed', username, identity_provider: idp });
    ctx.status = 200;
    ctx.type = 'html';
    ctx.body = signInPage({ uid, idp, username, error: 'Incorrect username or password.' });
    return;
  }
  const cognitoUsername = idp ? `${idp}_${username}` : username;
  record({ event: 'sign_in', username, identity_provider: idp, cognito_username: cognitoUsername });
  await finish({ login: { accountId: uuidFrom(cognitoUsername), amr: ['pwd'] } });
});

// Cognito's sign-out endpoint.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/logout') return next();
  if (ctx.method !== 'GET') ctx.throw(405);
  const clientId = str(ctx.query.client_id);
  const logoutUri = str(ctx.query.logout_uri);
  const ok = clientId === CLIENT_ID && logoutUri !== undefined && LOGOUT_URIS.includes(logoutUri);
  record({
    event: 'logout', client_id: clientId ?? null, logout_uri: logoutUri ?? null, ok,
  });
  ctx.set('cache-control', 'no-store');
  if (!ok) {
    ctx.status = 400;
    ctx.type = 'html';
    ctx.body = errorPage(
      'Sign-out failed',
      clientId !== CLIENT_ID ? 'Invalid client_id.' : 'logout_uri is not one of the allowed sign-out URLs for this client.',
    );
    return;
  }
  const session = await provider.Session.get(ctx);
  if (session && !session.new && session.exp) await session.destroy();
  const name = provider.cookieName('session');
  ctx.cookies.set(name, null, { httpOnly: true, sameSite: 'lax', path: '/' });
  ctx.cookies.set(`${name}.sig`, null, { httpOnly: true, sameSite: 'lax', path: '/' });
  ctx.redirect(logoutUri); // 302
});

// /oauth2/userInfo takes the JWT access token: map it back to the opaque
// token oidc-provider keeps (its `jti`).
provider.use(async (ctx, next) => {
  if (ctx.path === '/oauth2/userInfo') {
    const auth = ctx.get('authorization');
    const m = /^Bearer\s+(\S+\.\S+\.\S+)$/i.exec(auth);
    if (m) {
      const payload = verifyOwnJwt(m[1]);
      if (payload?.token_use === 'access' && typeof payload.jti === 'string') {
        ctx.req.headers.authorization = `Bearer ${payload.jti}`;
      }
    }
  }
  await next();
});

// The revocation endpoint: record the call (how the client authenticated, the answer).
provider.use(async (ctx, next) => {
  if (ctx.path !== '/oauth2/revoke' || ctx.method !== 'POST') return next();
  await next();
  const body = ctx.oidc?.body ?? {};
  record({
    event: 'revoke',
    client_auth: /^basic\s/i.test(ctx.get('authorization')) ? 'basic' : 'none',
    has_token: typeof body.token === 'string' && body.token.length > 0,
    status: ctx.status,
  });
});

// The token endpoint: record the call, then reshape the response like Cognito's.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/oauth2/token' || ctx.method !== 'POST') return next();
  await next();

  const body = ctx.oidc?.body ?? {};
  const authHeader = ctx.get('authorization');
  let clientAuth = 'none';
  if (/^basic\s/i.test(authHeader)) clientAuth = 'basic';
  else if (typeof body.client_secret === 'string') clientAuth = 'post';
  record({
    event: 'token',
    grant_type: str(body.grant_type) ?? null,
    client_auth: clientAuth,
    has_code_verifier: typeof body.code_verifier === 'string' && body.code_verifier.length > 0,
  });

  if (ctx.status !== 200 || !ctx.body || typeof ctx.body.access_token !== 'string') return;
  const { entities } = ctx.oidc;
  const at = entities.AccessToken;
  const source = entities.AuthorizationCode ?? entities.RefreshToken;
  const profile = accountProfile(at.accountId);
  const now = Math.floor(Date.now() / 1000);
  // Same origin_jti for every token of one sign-in (one grant), as in Cognito.
  const originJti = at.grantId ? uuidFrom(`origin:${at.grantId}`) : undefined;

  // Access token: a Cognito-shaped JWT whose jti is oidc-provider's opaque token.
  const accessPayload = {
    sub: profile.sub,
    ...(profile.groups.length ? { 'cognito:groups': profile.groups } : {}),
    iss: ISSUER,
    version: 2,
    client_id: at.clientId,
    origin_jti: originJti,
    token_use: 'access',
    scope: at.scope,
    auth_time: source?.authTime ?? now,
    exp: at.exp ?? (now + ACCESS_TTL),
    iat: at.iat ?? now,
    jti: at.jti,
    username: profile.username,
  };
  const accessToken = signJwt({ kid: KID, alg: 'RS256' }, accessPayload);

  const out = {};
  if (typeof ctx.body.id_token === 'string') {
    const { header, payload } = decodeJwt(ctx.body.id_token);
    delete payload.sid;
    payload.at_hash = halfHash(accessToken);
    payload.origin_jti = originJti;
    payload.jti = crypto.randomUUID();
    out.id_token = signJwt(header, payload);
  }
  out.access_token = accessToken;
  // Cognito returns a refresh token from the authorization_code grant only;
  // refresh_token grants do not rotate it and do not repeat it.
  if (body.grant_type === 'authorization_code' && ctx.body.refresh_token) {
    out.refresh_token = ctx.body.refresh_token;
  }
  out.expires_in = ctx.body.expires_in;
  out.token_type = 'Bearer';
  ctx.body = out;
});

provider.on('server_error', (_ctx, err) => {
  process.stderr.write(`server_error: ${err?.stack ?? err}\n`);
});

provider.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`oidc provider listening on http://127.0.0.1:${PORT} issuer=${ISSUER} client_id=${CLIENT_ID} auth=${client.token_endpoint_auth_method} kid=${KID}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
