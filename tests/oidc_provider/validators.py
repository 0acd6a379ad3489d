from oauth2_provider.oauth2_validators import OAuth2Validator


class ClaimsValidator(OAuth2Validator):
    """The standard claims of the `email` and `profile` scopes, in the ID token and from userinfo."""

    def get_additional_claims(self, request):
        user = request.user
        person = getattr(user, "person", None)
        return {
            "email": user.email,
            "email_verified": person.email_verified if person is not None else True,
            "name": user.get_full_name() or user.username,
            "preferred_username": user.username,
        }

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration_time = super().get_id_token_dictionary(token, token_handler, request)
        person = getattr(request.user, "person", None)
        if person is not None and person.email_in_userinfo_only:
            claims.pop("email", None)
            claims.pop("email_verified", None)
        return claims, expiration_time
