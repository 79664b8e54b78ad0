from django.apps import AppConfig


class AIOptionsConfig(AppConfig):
    name = "aioptions"
    verbose_name = "AI options"
    default_auto_field = "django.db.models.BigAutoField"
