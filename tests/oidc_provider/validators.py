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
