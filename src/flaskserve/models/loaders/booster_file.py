"""``model.bst``: the booster file name KServe's XGBoost and LightGBM servers both look for.

The suffix does not say which library wrote the file, so its content does:

* XGBoost's UBJSON or JSON document (what ``Booster.save_model("model.bst")``
  writes since XGBoost 2.1) goes to the XGBoost loader, and through its checks;
* LightGBM's model text (it starts with a ``tree`` line) goes to the LightGBM
  loader, and through its checks;
* anything else is refused. That includes XGBoost's old binary format, which
  older releases wrote under ``.bst``: nothing here can check it before XGBoost
  trusts it, so it is not loaded — loading it once with XGBoost and saving it
  again (to ``.ubj``, or to ``.bst`` with XGBoost 2.1 or later) makes it servable.
"""

from __future__ import annotations

from flaskserve.errors import ModelLoadError
from flaskserve.models.loaders import LoadedFile
from flaskserve.models.loaders.booster_check import xgboost_encoding
from flaskserve.models.loaders.lightgbm import LightGBMLoader
from flaskserve.models.loaders.xgboost import XGBoostLoader
from flaskserve.models.trust import ModelFile, TrustPolicy

__all__ = ["BoosterFileLoader"]

#: The first line of every LightGBM model text.
_LIGHTGBM_FIRST_LINES = (b"tree\n", b"tree\r\n")


class BoosterFileLoader:
    suffixes: tuple[str, ...] = (".bst",)
    frameworks: tuple[str, ...] = ("xgboost",)

    def load(self, file: ModelFile, *, display_name: str, trust: TrustPolicy) -> LoadedFile:
        if xgboost_encoding(file.data) is not None:
            return XGBoostLoader().load(file, display_name=display_name, trust=trust)
        if file.data.startswith(_LIGHTGBM_FIRST_LINES):
            return LightGBMLoader().load(file, display_name=display_name, trust=trust)
        raise ModelLoadError(
            f"{display_name} is neither an XGBoost UBJSON/JSON booster nor a LightGBM model text "
            "(XGBoost's old binary format cannot be checked before loading, so it is not served): "
            "load it with XGBoost and save it again as model.ubj, or as model.bst with XGBoost 2.1 or later"
        )
