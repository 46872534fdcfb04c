"""From flag to delivered help on the demo city: what the platform and its caseworkers would do with
the service's answers, played through the API of a running service, and the funnel it yields.

    make demo                                  # in one terminal: the demo city, its models, the service
    .venv/bin/python experiments/casework_walkthrough.py --out experiments/casework.md

What it does, as the platform would (every call is a real HTTP call with the demo keys):
1. scores a random sample of the demo city's households as of the data's last day (POST /v1/score/batch);
2. visits the flagged ones with the highest probability, as many as ``--visits`` (a few days after);
3. records what each visit found (POST /v1/feedback): the synthetic city's latent truth stands in for
   the caseworker's eyes — a household in a hardship episode that month is found in need of it;
4. records the visit's needs assessment (POST /v1/assessments) for households found in need: the
   domains their hardship touches, at levels a caseworker would set;
5. drafts each such household's plan (POST /v1/households/{id}/plan) and moves its measures as a
   household and its departments might (agreed, in progress, delivered; some declined with a reason;
   no event later than today);
6. reads the funnel from flag to delivered help (GET /v1/models) and one household's file, needs and
   plan, and writes them as Markdown.

The outcomes of steps 3 and 5 are simulated (seeded): this shows what the service records and how
the funnel reads, not how well any bureau works. Nothing here is imported by the packages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from domain.funnel import STEP_LABELS as STEP_ZH
from domain.funnel import STEPS
from features.io import load_policy_book, read_frame, read_tables
from features.tables import Tables, bundle_from_tables

# the domains a hardship touches, and the level and words a caseworker would record for each
DOMAINS_OF = {
    "illness_poverty": [("medical", 3, "患者住院治疗后自付费用高，家庭积蓄已用尽，后续治疗费用无着落"),
                        ("basic_living", 2, "因病停工，家庭收入明显下降，日常开支紧张")],
    "disability_poverty": [("care", 2, "重度残疾成员需专人照护，家人无法外出务工"),
                           ("basic_living", 1, "照护支出较大，生活较为拮据")],
    "unemployment_poverty": [("employment", 2, "主要劳动力失业半年以上，有就业意愿，缺少技能"),
                             ("basic_living", 2, "失业后收入骤降，靠亲友接济")],
    "elderly_care_need": [("care", 3, "高龄老人行动不便，无人照料，存在跌倒风险")],
    "child_in_difficulty": [("child_protection", 2, "未成年子女无人有效监护，学习生活缺乏照顾"),
                            ("education", 1, "子女就学费用负担较重")],
}
DECLINE_NOTES = ["户方表示暂不需要", "户方已通过亲属解决", "户方不愿申请"]


def _keys(path: Path) -> dict[str, str]:
    """role → key from the ``.demo_keys`` file ``relief-risk serve --demo-keys`` writes (``role=key`` lines)."""
    pairs = (line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {role.strip(): key.strip() for role, key in pairs}


def _sub_tables(tables: Tables, ids: set[str]) -> Tables:
    hh = tables.households.loc[tables.households["household_id"].isin(ids)]
    persons = tables.persons.loc[tables.persons["household_id"].isin(ids)]
    people = set(persons["person_id"])
    return Tables(households=hh, persons=persons, income=tables.income.loc[tables.income["person_id"].isin(people)],
                  claims=tables.claims.loc[tables.claims["person_id"].isin(people)],
                  assistance=tables.assistance.loc[tables.assistance["household_id"].isin(ids)],
                  verifications=tables.verifications.loc[tables.verifications["household_id"].isin(ids)])


def _in_episode(truth: pd.DataFrame, household_id: str, month: str) -> list[str]:
    rows = truth.loc[(truth["household_id"] == household_id) & (truth["start_month"] <= month)
                     & (truth["end_month"] >= month)]
    return sorted(set(rows["finding"]))


def _post(c: httpx.Client, path: str, key: str, body: Any) -> dict[str, Any]:
    r = c.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    if r.status_code not in (200, 201):
        raise SystemExit(f"{path}: {r.status_code} {r.text[:500]}")
    return r.json()


def _get(c: httpx.Client, path: str, key: str) -> dict[str, Any]:
    r = c.get(path, headers={"Authorization": f"Bearer {key}"})
    if r.status_code != 200:
        raise SystemExit(f"{path}: {r.status_code} {r.text[:500]}")
    return r.json()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the running service (default: make demo's)")
    p.add_argument("--keys", type=Path, default=Path(".demo_keys"), help="the demo keys file make demo wrote")
    p.add_argument("--data", type=Path, default=Path("data/city"), help="the demo city's raw tables")
    p.add_argument("--sample", type=int, default=4000, help="households scored (default 4000)")
    p.add_argument("--visits", type=int, default=120, help="flagged households visited (default 120)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--today", type=dt.date.fromisoformat, default=dt.date.today(),
                   help="no visit or event is dated after this day (default: today)")
    p.add_argument("--out", type=Path, help="write the Markdown report here (default: print it)")
    a = p.parse_args(argv)
    rng, prng = random.Random(a.seed), np.random.default_rng(a.seed)
    keys = _keys(a.keys)
    platform, auditor = keys["platform"], keys["auditor"]

    policy = load_policy_book()
    tables = read_tables(a.data, policy=policy)
    truth = read_frame(a.data, "truth")
    last_month = tables.income["month"].max()
    as_of = (pd.Period(last_month, "M").end_time.date()).isoformat()
    ids = sorted(prng.choice(tables.households["household_id"].to_numpy(), a.sample, replace=False).tolist())
    sub = _sub_tables(tables, set(ids))
    print(f"scoring {len(ids)} households as of {as_of} …", file=sys.stderr)

    scored: list[dict[str, Any]] = []
    with httpx.Client(base_url=a.url, timeout=300) as c:
        for lo in range(0, len(ids), 500):
            items = [bundle_from_tables(sub, h, as_of) for h in ids[lo:lo + 500]]
            scored += [r for r in _post(c, "/v1/score/batch", platform, {"items": items})["results"] if "scores" in r]
        flagged = [r for r in scored if any(s["flagged"] for s in r["scores"])]
        flagged.sort(key=lambda r: -max(s["probability"] for s in r["scores"] if s["flagged"]))
        visited = flagged[:a.visits]
        print(f"{len(flagged)} flagged; visiting {len(visited)} …", file=sys.stderr)
        day0 = dt.date.fromisoformat(as_of)
        walked: list[tuple[str, str, bool]] = []  # (household, request id, flagged for illness) with help delivered
        for r in visited:
            hid, rid = r["household_id"], r["request_id"]
            visit = min(day0 + dt.timedelta(days=rng.randint(3, 20)), a.today)
            found = _in_episode(truth, hid, as_of[:7])  # the data end with the as_of month
            _post(c, "/v1/feedback", platform, {"request_id": rid, "household_id": hid,
                                                "visited_on": visit.isoformat(), "findings": found or ["not_in_need"]})
            if not found:
                continue
            domains: dict[str, tuple[int, str]] = {}
            for finding in found:
                for domain, level, text in DOMAINS_OF[finding]:
                    if level > domains.get(domain, (0, ""))[0]:
                        domains[domain] = (level, text)
            _post(c, "/v1/assessments", platform, {
                "request_id": rid, "assessed_on": visit.isoformat(), "assessor": f"SW{rng.randint(1, 40):04d}",
                "domains": [{"domain": d, "level": lv, "evidence": t} for d, (lv, t) in sorted(domains.items())]})
            plan = _post(c, f"/v1/households/{hid}/plan", platform, {"on": visit.isoformat(), "actor": "社工0001"})
            delivered = False
            for m in plan["measures"]:
                day = visit
                roll = rng.random()
                if roll < 0.1:
                    day += dt.timedelta(days=rng.randint(1, 7))
                    if day <= a.today:
                        _post(c, f"/v1/households/{hid}/plan/measures/{m['measure_id']}/events", platform,
                              {"status": "declined", "actor": "社工0001", "on": day.isoformat(),
                               "note": rng.choice(DECLINE_NOTES)})
                    continue
                if roll > 0.85:
                    continue  # still proposed: the department has not answered yet
                for status, lo_days, hi_days in (("agreed", 1, 7), ("in_progress", 2, 10), ("delivered", 5, 30)):
                    day += dt.timedelta(days=rng.randint(lo_days, hi_days))
                    if day > a.today:
                        break
                    _post(c, f"/v1/households/{hid}/plan/measures/{m['measure_id']}/events", platform,
                          {"status": status, "actor": f"{m['owner_label']}经办人", "on": day.isoformat()})
                    delivered |= status == "delivered"
            if delivered:
                ill = any(x["flagged"] and x["risk"] == "illness_poverty" for x in r["scores"])
                walked.append((hid, rid, ill))

        models = _get(c, "/v1/models", auditor)
        example = None
        if walked:  # the example: an illness-flagged household if one got help (因病致贫 comes first)
            hid, rid, _ = next((w for w in walked if w[2]), walked[0])
            example = {"household_id": hid, "request_id": rid,
                       "file": _get(c, f"/v1/households/{hid}", auditor),
                       "needs": _get(c, f"/v1/households/{hid}/needs", auditor),
                       "plan": _get(c, f"/v1/households/{hid}/plan", auditor)}
    report = render(models["funnel"], example, as_of, len(ids), len(flagged), len(visited), a)
    if a.out:
        a.out.write_text(report, encoding="utf-8")
        print(f"wrote {a.out}", file=sys.stderr)
    else:
        print(report)
    return 0


def render(funnel: list[dict[str, Any]], example: dict[str, Any] | None, as_of: str, n: int, n_flagged: int,
           n_visited: int, a: argparse.Namespace) -> str:
    lines = [f"# From flag to delivered help on the demo city (as of {as_of})", "",
             f"`experiments/casework_walkthrough.py --sample {a.sample} --visits {a.visits} --seed {a.seed}` "
             f"against `make demo`: {n} households scored through the API, {n_flagged} flagged for at least one "
             f"risk, the {n_visited} with the highest probability visited. Visit findings come from the synthetic "
             "city's latent truth and the measures' progress is simulated: the figures show what the service "
             "records and how the funnel reads, not how well a bureau works.", "",
             "## The funnel per risk (all towns; `GET /v1/models` gives it per town)", "",
             "| risk | " + " | ".join(f"{STEP_ZH[s]} {s}" for s in STEPS) + " |",
             "| --- |" + " ---: |" * len(STEPS)]
    by_risk: dict[str, dict[str, Any]] = {}
    for row in funnel:
        g = by_risk.setdefault(row["risk"], {"steps": dict.fromkeys(STEPS, 0), "gaps": {s: [] for s in STEPS[1:]}})
        for s in STEPS:
            g["steps"][s] += row["steps"][s]
        for s in STEPS[1:]:
            if row["median_days"][s] is not None:
                g["gaps"][s] += [row["median_days"][s]] * row["steps"][s]
    for risk, g in sorted(by_risk.items()):
        cells = [str(g["steps"]["flagged"])]
        for s in STEPS[1:]:
            gap = g["gaps"][s]
            cells.append(f"{g['steps'][s]}" + (f" (median {statistics.median(gap):g} d)" if gap else ""))
        lines.append(f"| {risk} | " + " | ".join(cells) + " |")
    lines += ["", "Median days between steps are the medians of the towns' medians, weighted by households "
              "(the per-town medians are exact in the API).", ""]
    if example is not None:
        f, needs, plan = example["file"], example["needs"], example["plan"]
        lines += [f"## One household, from flag to delivered measure: `{example['household_id']}`", "",
                  "**The flag** (`POST /v1/score`, request `" + example["request_id"] + "`):", ""]
        for s in f["scores"]:
            if s["flagged"]:
                reasons = "; ".join(r.get("display") or f"{r['label']} {r['value']}" for r in s["reasons"][:3])
                lines.append(f"- {s['risk']}: probability {s['probability']:.3f}, band {s['band']}; top reasons: "
                             f"{reasons}")
        lines += ["", "**Lists** it is on: " + ("、".join(x["label"] for x in f["lists"]) or "none") + ".", "",
                  f"**Needs** (`GET …/needs`): overall {needs['overall_label']} (level {needs['overall_level']}).", ""]
        for d in needs["domains"]:
            if d["level"]:
                src = "; ".join(f"[{e['source']}] {e['text']}" for e in d["evidence"][:2])
                lines.append(f"- {d['label']} {d['domain']}: level {d['level']} — {src}")
        lines += ["", "**Plan** (`GET …/plan`):", ""]
        for m in plan["measures"]:
            moves = " → ".join(f"{e['status_label']} {e['on']}" for e in m["events"])
            lines.append(f"- {m['label']} ({m['owner_label']}, due {m['due']}): {m['status_label']} — {moves}"
                         + (f"（{m['events'][-1]['note']}）" if m["events"][-1].get("note") else ""))
        lines += ["", "The auditor sees the same on the case page `/ui/cases/" + example["request_id"] + "` "
                  "(需求评估, 帮扶计划（一户一策）, the score history and who read the file).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
