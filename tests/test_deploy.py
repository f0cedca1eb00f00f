"""The deployment files say what the server understands."""

from __future__ import annotations

from pathlib import Path

import yaml

from flaskserve.settings import load_settings

DEPLOY = Path(__file__).parents[1] / "deploy"


def test_the_kubernetes_config_map_holds_valid_settings(tmp_path: Path) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "flaskserve.yaml").read_text()))
    [config_map] = [d for d in documents if d and d["kind"] == "ConfigMap"]
    config = tmp_path / "flaskserve.toml"
    config.write_text(config_map["data"]["flaskserve.toml"])

    settings = load_settings(config)

    assert settings.host == "0.0.0.0"
    assert settings.rate_limit_storage == "redis://redis:6379/0"
    assert str(settings.keys_file) == "/etc/flaskserve/keys/keys.json"


def test_the_probes_point_at_routes_the_app_serves(app: object) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "flaskserve.yaml").read_text()))
    [deployment] = [d for d in documents if d and d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    probes = [container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")]
    rules = {rule.rule for rule in app.url_map.iter_rules()}  # type: ignore[attr-defined]

    assert set(probes) <= rules


def test_the_dockerfile_runs_the_serve_command_as_a_non_root_user() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()

    assert 'ENTRYPOINT ["flaskserve", "serve"]' in dockerfile
    assert "USER 10001" in dockerfile


def test_the_monitoring_alert_rules_name_metrics_the_server_exposes(tmp_path: Path) -> None:
    import re

    from click.testing import CliRunner

    from flaskserve import testing
    from flaskserve.app import create_app
    from flaskserve.cli import main
    from flaskserve.observability.monitoring import Monitoring

    rules = yaml.safe_load((DEPLOY / "prometheus" / "flaskserve-monitoring-rules.yaml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for expr in expressions for name in re.findall(r"flaskserve_[a-z_]+", expr)}
    repository = testing.write_repository(
        tmp_path / "models", {"iris": {"1": (testing.train_iris_classifier(), ".skops")}}
    )
    frame, _ = testing.iris_frame()
    frame.to_csv(tmp_path / "iris.csv", index=False)
    model = repository / "iris" / "1" / "model.skops"
    assert (
        CliRunner().invoke(main, ["profile", str(model), "--data", str(tmp_path / "iris.csv")]).exit_code == 0
    )
    app = create_app(load_settings(None, model_path=repository, inference_log=f"file://{tmp_path / 'log'}"))
    client = app.test_client()
    assert client.post("/predict", json=frame.iloc[0].to_dict()).status_code == 200

    exposed = client.get("/metrics").get_data(as_text=True)
    Monitoring.flush(app)

    assert named
    assert {name for name in named if not re.search(rf"^{name}(\{{| )", exposed, re.M)} == set()
