from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # the options page (aioptions) lists and edits campaigns through these, never by import
        from aioptions.campaign_hooks import hooks

        from . import bulk_actions, import_jobs, selectors, services  # noqa: F401 - the first two register job kinds

        hooks.list_campaigns = selectors.list_campaigns
        hooks.set_voice = services.set_campaign_voice
        hooks.preview_text = selectors.preview_text
