// A real OpenID provider for the single sign-on tests: panva's oidc-provider (OpenID-certified)
// on loopback, with one confidential client, its development sign-in and consent pages, and the
// people the test names. Settings come from the environment:
//   PORT           where to listen (127.0.0.1)
//   CLIENT_ID, CLIENT_SECRET, REDIRECT_URI   the one client (Docket)
//   ACCOUNTS       JSON {login: {email, email_verified, name}}
//   CODE_TTL       seconds an authorization code lives (default 60)
//   KEY_ID         the signing key's id; a new key is made at each start, so restarting with
//                  another id is a key rotation
// It prints "ready" once it listens.
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const env = (name, fallback) => process.env[name] ?? fallback;
const port = Number(env('PORT'));
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(env('ACCOUNTS', '{}'));

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const key = { ...(await exportJWK(privateKey)), kid: env('KEY_ID', 'key-1'), alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: env('CLIENT_ID'),
    client_secret: env('CLIENT_SECRET'),
    redirect_uris: [env('REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [key] },
  pkce: { required: () => true },
  // The ID token carries the claims the scopes ask for (Docket reads them there).
  conformIdTokenClaims: false,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  ttl: { AuthorizationCode: Number(env('CODE_TTL', '60')) },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    const person = accounts[id];
    if (!person) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...person }) };
  },
});
provider.on('server_error', (_ctx, err) => console.error('provider error:', err));
provider.listen(port, '127.0.0.1', () => console.log('ready'));
