"""The ``imitation:`` section of an experiment (``flowsim imitate``).

These models only describe and check the section; :mod:`flowsim.hierarchy.imitate` runs it.
Importing this module imports neither torch nor the rest of flowsim.

Example:
    >>> ImitationConfig.model_validate({"strong_demos": 3, "weak_demos": 20}).levels
    2
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator


class SkillConfig(BaseModel):
    """Reuse of a procedure learned on another task (shared skills)."""

    model_config = ConfigDict(extra="forbid")

    procedure: str = Field(..., description="Procedure name, e.g. Follow.")
    mode: Literal["frozen", "retrain", "recreate"] = Field(
        "frozen",
        description="frozen: load and keep fixed; retrain: load and train on; recreate: "
        "fresh weights.",
    )


class ImitationConfig(BaseModel):
    """Which expert to imitate, how many demonstrations of each kind, and how to learn."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    expert: Literal["ring", "bus", "figure_eight"] = Field(
        "ring",
        description="Hierarchical expert: ring (Drive/Cruise/Follow/ChangeLane/Yield), bus "
        "(Drive/Cruise/Follow/Yield/Approach/Dwell: serves stops, a task that needs memory) or "
        "figure_eight (Drive/Cruise/Follow/Yield: yields at the crossing of Flow's figure eight).",
    )
    strong_demos: StrictInt = Field(
        10, ge=0, le=100_000, description="Episodes demonstrated with call stacks."
    )
    weak_demos: StrictInt = Field(
        0, ge=0, le=100_000, description="Episodes demonstrated with states and actions only."
    )
    held_out_demos: StrictInt = Field(
        2, ge=0, le=10_000, description="Episodes kept aside to measure accuracy."
    )
    demo_noise: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Std (m/s²) of noise added to the expert's executed accelerations while "
        "it demonstrates (the recorded actions stay the intended ones, DART-style).",
    )
    levels: StrictInt = Field(
        2,
        ge=2,
        le=2,
        description="Hierarchy depth learned from weak demonstrations: the ring, bus and "
        "figure-eight programs have 2 (deeper specs: flowsim.hierarchy.levels.fit_levels, "
        "level by level).",
    )
    epochs: StrictInt = Field(300, ge=1, le=1_000_000, description="Full-batch Adam epochs.")
    lr: float = Field(3e-3, gt=0, le=1, description="Adam learning rate.")
    hidden: tuple[StrictInt, ...] = Field((64, 64), description="Hidden sizes of each procedure.")
    pc_cap: StrictInt = Field(
        20, ge=1, le=1000, description="Program counters are seen as min(pc, pc_cap)."
    )
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1, description="Seed of weights and episodes.")
    eval_episodes: StrictInt = Field(
        3, ge=0, le=10_000, description="Closed-loop episodes (learned program and expert)."
    )
    baseline: bool = Field(True, description="Also train and evaluate flat behaviour cloning.")
    skills_from: str | None = Field(
        None, description="Run directory whose procedures are reused (with skills)."
    )
    skills: list[SkillConfig] = Field(
        default_factory=list, description="Procedures reused from skills_from, and how."
    )

    @model_validator(mode="after")
    def _some_demos(self) -> ImitationConfig:
        if self.strong_demos + self.weak_demos < 1:
            raise ValueError("imitation needs strong_demos or weak_demos of at least 1")
        if self.skills and self.skills_from is None:
            raise ValueError("imitation.skills needs imitation.skills_from (a run directory)")
        return self
