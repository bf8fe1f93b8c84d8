// A real OpenID Connect provider (npm oidc-provider) on loopback, for the SSO tests only.
//
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS (space separated).
// One confidential client; any login name of [a-z0-9-] is an account whose `sub` is that
// name (tests pick subjects; the vault decides whom it knows). The sign-in page is a
// one-field form (`login`) that Playwright or httpx fills; consent is granted without a
// page. Keys are made at start: nothing here is a secret worth keeping.
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const { PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS } = process.env;
const issuer = `http://127.0.0.1:${PORT}`;
const LOGIN = /^[a-z0-9-]{1,40}$/;

const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), kid: "test-rs256", use: "sig", alg: "RS256" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: REDIRECT_URIS.split(" "),
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [jwk] },
  claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
  scopes: ["openid", "email", "profile"],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ["test-only-cookie-key"] },
  async findAccount(ctx, id) {
    if (!LOGIN.test(id)) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@idp.test`, email_verified: true, name: `Test ${id}` };
      },
    };
  },
});

const page = (uid, error) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test IdP sign-in</title></head>
<body><main><h1>Test IdP sign-in</h1>${error ? `<p role="alert">${error}</p>` : ""}
<form method="post" action="/interaction/${uid}">
<label for="login">Login</label> <input id="login" name="login" autocomplete="username" required>
<button type="submit">Sign in</button>
</form></main></body></html>`;

async function formBody(req) {
  let raw = "";
  for await (const chunk of req) raw += chunk;
  return new URLSearchParams(raw);
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([A-Za-z0-9_-]+)$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { uid, prompt, params } = details;
  if (prompt.name === "consent") {
    // grant what was asked, without a page
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    grant.addOIDCScope(params.scope);
    const grantId = await grant.save();
    return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
  }
  if (ctx.method === "GET") {
    ctx.type = "html";
    ctx.body = page(uid);
    return undefined;
  }
  const login = (await formBody(ctx.req)).get("login") || "";
  if (!LOGIN.test(login)) {
    ctx.status = 400;
    ctx.type = "html";
    ctx.body = page(uid, "A login is 1-40 characters of a-z, 0-9 and '-'.");
    return undefined;
  }
  return provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: login } }, {
    mergeWithLastSubmission: false,
  });
});

provider.listen(Number(PORT), "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
