from django import template
from django.forms import BaseForm, BoundField

register = template.Library()


@register.filter
def invalid_fields(form: BaseForm) -> list[BoundField]:
    """The form's visible fields that have errors, in order (for the error summary)."""
    return [field for field in form.visible_fields() if field.errors]
