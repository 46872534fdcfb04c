"""MLflow "models from code" entry: logged as the model's code, so the artifact holds no pickle.

MLflow executes this file when it loads the model; the ``models`` and ``features`` packages travel
with the model as ``code_paths``.
"""

import mlflow.models

from models.pyfunc import RiskPyfunc

mlflow.models.set_model(RiskPyfunc())
