"""kopf is configured with the names fixed in the design."""

import kopf

from steward.api.constants import FINALIZER
from steward.controllers.settings import WATCH_CLIENT_TIMEOUT, WATCH_SERVER_TIMEOUT, configure


def test_settings_use_steward_names_and_bounded_watches() -> None:
    settings = kopf.OperatorSettings()
    configure(settings)
    assert settings.persistence.finalizer == FINALIZER == "steward.ai/finalizer"
    progress = settings.persistence.progress_storage
    assert isinstance(progress, kopf.AnnotationsProgressStorage)
    assert progress.prefix == "steward.ai"
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.posting.enabled is False
    assert settings.watching.server_timeout == WATCH_SERVER_TIMEOUT
    assert settings.watching.client_timeout is not None
    assert settings.watching.client_timeout == WATCH_CLIENT_TIMEOUT > WATCH_SERVER_TIMEOUT
