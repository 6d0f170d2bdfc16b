"""Words the server writes for people (a CSV for the shift handover, a refusal
page): Chinese by default, English when asked with `lang=en`. The pages' own
words live in static/i18n.js; these few must match them."""

from __future__ import annotations

from aiohttp import web

from relay.refusal import Refused

LANGS = ("zh", "en")

LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "time": "时间",
        "site": "村",
        "camera": "摄像机",
        "kind": "报警类型",
        "reason": "事由",
        "state": "状态",
        "raised_by": "报警人",
        "team": "巡逻队",
        "steps": "处置经过",
        "id": "编号",
        "kind_code": "类型代码",
        "state_code": "状态代码",
        "kind_theft": "盗窃",
        "kind_fire": "火情",
        "kind_fight": "斗殴",
        "kind_missing": "走失",
        "kind_traffic": "交通事故",
        "kind_other": "其他",
        "state_open": "待处理",
        "state_acked": "已确认",
        "state_assigned": "已派警",
        "state_accepted": "已接警",
        "state_arrived": "已到场",
        "state_resolved": "已处置",
        "step_ack": "确认",
        "step_assign": "派警",
        "step_accept": "接警",
        "step_arrive": "到场",
        "step_resolve": "处置完毕",
        "refused_403": "无权打开此页面",
        "refused_403_detail": "此页面不对您的角色开放。"
        "请从上方菜单选择其他页面，或退出后换账号登录。",
        "refused_404": "找不到此页面",
        "refused_404_detail": "没有这个页面，或它不在您的管辖范围内。请从上方菜单选择其他页面。",
        "go_home": "回到我的首页",
    },
    "en": {
        "time": "time",
        "site": "village",
        "camera": "camera",
        "kind": "type",
        "reason": "reason",
        "state": "state",
        "raised_by": "raised by",
        "team": "team",
        "steps": "steps",
        "id": "id",
        "kind_code": "type code",
        "state_code": "state code",
        "kind_theft": "theft",
        "kind_fire": "fire",
        "kind_fight": "fight",
        "kind_missing": "missing person",
        "kind_traffic": "traffic accident",
        "kind_other": "other",
        "state_open": "open",
        "state_acked": "acknowledged",
        "state_assigned": "assigned",
        "state_accepted": "accepted",
        "state_arrived": "arrived",
        "state_resolved": "resolved",
        "step_ack": "acknowledged",
        "step_assign": "assigned",
        "step_accept": "accepted",
        "step_arrive": "arrived",
        "step_resolve": "resolved",
        "refused_403": "You may not open this page",
        "refused_403_detail": "This page is not open to your role. Choose another page in the"
        " menu above, or log out and log in with another account.",
        "refused_404": "Page not found",
        "refused_404_detail": "There is no such page, or it is outside your sites. Choose"
        " another page in the menu above.",
        "go_home": "Back to my home page",
    },
}


def lang_of(request: web.Request) -> str:
    """The `lang` the query asks for; Chinese without one."""
    lang = request.query.get("lang", "zh")
    if lang not in LANGS:
        raise Refused(400, f"lang must be one of {', '.join(LANGS)}")
    return lang


def label(lang: str, key: str) -> str:
    """The word for `key`; a code nobody named yet stays itself."""
    return LABELS[lang].get(key, key.partition("_")[2] or key)
