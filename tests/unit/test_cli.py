"""The `steward` command line: exit codes and what it prints."""

from pathlib import Path

from click.testing import CliRunner

from steward.cli import main


def test_validate_passes_the_shipped_policies(repo: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(repo / "policies")])
    assert result.exit_code == 0, result.output
    assert "0 problem(s)" in result.output


def test_validate_fails_and_names_the_field(tmp_path: Path, repo: Path) -> None:
    text = (repo / "policies/gpunodepools.yaml").read_text().replace("maxNodes: 6", "maxNodes: -6")
    (tmp_path / "pools.yaml").write_text(text)
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "GPUNodePool/a100-spot: spec.maxNodes: Input should be greater than or equal to 0" in (
        result.output.replace("\n", "")
    )


def test_validate_with_nothing_to_check_fails(tmp_path: Path) -> None:
    (tmp_path / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert "no Steward objects" in result.output


def test_crds_check_fails_on_drift_and_write_fixes_it(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["crds", "--check", "--out", str(tmp_path)]).exit_code == 1
    assert runner.invoke(main, ["crds", "--out", str(tmp_path)]).exit_code == 0
    result = runner.invoke(main, ["crds", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
