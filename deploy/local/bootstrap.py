#!/usr/bin/env python3
"""Creates the demo Cognito user pool in moto and prints its ids as a shell-sourceable env file.

    .venv/bin/python deploy/local/bootstrap.py --endpoint http://127.0.0.1:5000 > demo.env

What it creates (moto keeps state in memory, so this runs once per moto start):
  - a user pool (plain usernames: UsernameAttributes not set)
  - an app client without secret, flows ADMIN_USER_PASSWORD / USER_PASSWORD / REFRESH_TOKEN
  - a group "admin"
  - demo@example.com, password Demo-Passw0rd!  (confirmed, in group admin)
  - new@example.com, temporary password Temp-Passw0rd!  (FORCE_CHANGE_PASSWORD: the first
    login answers the NEW_PASSWORD_REQUIRED challenge)
  - mfa@example.com, password Mfa-Passw0rd!, with TOTP MFA enrolled and preferred: its login
    answers the SOFTWARE_TOKEN_MFA challenge. The pool's MFA is OPTIONAL (software tokens
    only). moto gives every user one fixed TOTP secret (MFA_TOTP_SECRET below); deploy/local/
    moto.sh starts moto with MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP=true, so codes are checked.
  - each --user EMAIL:PASSWORD (repeatable): a confirmed user in no group, for tests that need
    users of their own (a sign-out ends every session of its user)
  - with --mfa on, the pool's MFA is then ON (software tokens): new@example.com, after its new
    password, must set up an authenticator app (MFA_SETUP); the others are asked for a code

stdout gets only the env file (COGNITO_USER_POOL_ID, COGNITO_APP_CLIENT_ID, AWS_REGION).
"""

import argparse
import base64
import hmac
import os
import shlex
import struct
import sys
import time

import boto3

DEMO_USER = "demo@example.com"
DEMO_PASSWORD = "Demo-Passw0rd!"
NEW_USER = "new@example.com"
NEW_TEMP_PASSWORD = "Temp-Passw0rd!"
ADMIN_GROUP = "admin"
MFA_USER = "mfa@example.com"
MFA_PASSWORD = "Mfa-Passw0rd!"
# moto's one TOTP secret for every user (its source: COGNITO_TOTP_MFA_SECRET).
MFA_TOTP_SECRET = "asdfasdfasdf"


def totp(secret: str) -> str:
    """The current RFC 6238 code (HMAC-SHA1, 30 s, 6 digits), a few seconds from a step's end."""
    if time.time() % 30 > 25:
        time.sleep(30.2 - time.time() % 30)
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), "sha1").digest()
    offset = digest[-1] & 15
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="moto's URL, e.g. http://127.0.0.1:5000")
    # moto answers unsigned calls (the SDK's InitiateAuth, GlobalSignOut) from us-east-1 only.
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--pool-name", default="cognito-sidecar-demo")
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="EMAIL:PASSWORD",
        help="another confirmed user (no group); repeatable",
    )
    parser.add_argument(
        "--mfa",
        choices=("optional", "on"),
        default="optional",
        help="the pool's MFA once the users exist (on: a new user sets up TOTP at first sign-in)",
    )
    args = parser.parse_args()
    extra = []
    for spec in args.user:
        email, sep, password = spec.partition(":")
        if not sep or not email or not password:
            parser.error(f"--user wants EMAIL:PASSWORD, got {spec!r}")
        extra.append((email, password))

    # moto accepts any credentials; set dummies so boto3 never looks for real ones.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    idp = boto3.client(
        "cognito-idp",
        endpoint_url=args.endpoint,
        region_name=args.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )

    pool_id = idp.create_user_pool(
        PoolName=args.pool_name,
        # forgot-password sends the code to the e-mail address (moto sends nothing).
        AccountRecoverySetting={"RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]},
        Policies={
            "PasswordPolicy": {
                "MinimumLength": 8,
                "RequireUppercase": True,
                "RequireLowercase": True,
                "RequireNumbers": True,
                "RequireSymbols": True,
            }
        },
    )["UserPool"]["Id"]

    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="cognito-sidecar-demo-client",
        GenerateSecret=False,
        ExplicitAuthFlows=[
            "ALLOW_ADMIN_USER_PASSWORD_AUTH",
            "ALLOW_USER_PASSWORD_AUTH",
            "ALLOW_REFRESH_TOKEN_AUTH",
        ],
    )["UserPoolClient"]["ClientId"]

    idp.create_group(UserPoolId=pool_id, GroupName=ADMIN_GROUP, Description="demo administrators")

    def create_user(username: str, password: str) -> None:
        idp.admin_create_user(
            UserPoolId=pool_id,
            Username=username,
            TemporaryPassword=password,
            MessageAction="SUPPRESS",
            UserAttributes=[
                {"Name": "email", "Value": username},
                {"Name": "email_verified", "Value": "true"},
            ],
        )

    create_user(DEMO_USER, DEMO_PASSWORD)
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username=DEMO_USER, Password=DEMO_PASSWORD, Permanent=True
    )
    idp.admin_add_user_to_group(UserPoolId=pool_id, Username=DEMO_USER, GroupName=ADMIN_GROUP)

    create_user(NEW_USER, NEW_TEMP_PASSWORD)

    # A user with TOTP MFA: sign in, enroll the software token, prefer it.
    idp.set_user_pool_mfa_config(
        UserPoolId=pool_id,
        SoftwareTokenMfaConfiguration={"Enabled": True},
        MfaConfiguration="OPTIONAL",
    )
    create_user(MFA_USER, MFA_PASSWORD)
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username=MFA_USER, Password=MFA_PASSWORD, Permanent=True
    )
    access = idp.admin_initiate_auth(
        UserPoolId=pool_id,
        ClientId=client_id,
        AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": MFA_USER, "PASSWORD": MFA_PASSWORD},
    )["AuthenticationResult"]["AccessToken"]
    secret = idp.associate_software_token(AccessToken=access)["SecretCode"]
    idp.verify_software_token(AccessToken=access, UserCode=totp(secret))
    idp.admin_set_user_mfa_preference(
        UserPoolId=pool_id,
        Username=MFA_USER,
        SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
    )
    for email, password in extra:
        create_user(email, password)
        idp.admin_set_user_password(
            UserPoolId=pool_id, Username=email, Password=password, Permanent=True
        )

    if args.mfa == "on":
        idp.set_user_pool_mfa_config(
            UserPoolId=pool_id,
            SoftwareTokenMfaConfiguration={"Enabled": True},
            MfaConfiguration="ON",
        )

    print("# written by deploy/local/bootstrap.py for the moto at " + args.endpoint)
    for name, value in (
        ("COGNITO_USER_POOL_ID", pool_id),
        ("COGNITO_APP_CLIENT_ID", client_id),
        ("AWS_REGION", args.region),
    ):
        print(f"{name}={shlex.quote(value)}")
    print(
        f"bootstrap.py: pool {pool_id}, client {client_id}; users {DEMO_USER} (group "
        f"{ADMIN_GROUP}), {NEW_USER} (must set a new password), {MFA_USER} (TOTP MFA)"
        + "".join(f", {email}" for email, _ in extra)
        + ("; MFA on" if args.mfa == "on" else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
