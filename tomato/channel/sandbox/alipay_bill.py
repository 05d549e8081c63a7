"""The Alipay trade bill the simulator serves (its layout: docs/reconciliation.md).

A zip (`<pid>_<yyyyMMdd>.csv.zip`) of two GBK CSVs with GBK-encoded entry names: `<pid>_<yyyyMMdd>_业务明细.csv`
(header lines, `#-----…业务明细列表-----…`, 25 columns, rows whose id cells end in a TAB, the end marker, footer
totals) and `<pid>_<yyyyMMdd>_业务明细(汇总).csv` (the day's totals). Lines end in `\\r\\n`.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta

from tomato.channel.adapters.alipay import codec
from tomato.channel.sandbox.state import CHINA, BillRow

START = "#" + "-" * 41 + "业务明细列表" + "-" * 40
END = "#" + "-" * 41 + "业务明细列表结束" + "-" * 36
SUMMARY_START = "#" + "-" * 41 + "业务汇总列表" + "-" * 40
SUMMARY_END = "#" + "-" * 40 + "业务汇总列表结束" + "-" * 37
COLUMNS = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,"
    "商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,"
    "卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注"
)
SUMMARY_COLUMNS = (
    "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,"
    "服务费（元）,分润（元）,实收净额（元）"
)
PAYER = "*沙(sim***@sandbox.example)"
_T = "\t"
_BUSINESS = {(True, True): "交易", (True, False): "交易关闭", (False, True): "退款", (False, False): "退款失败"}


class _GbkName(zipfile.ZipInfo):
    """A zip entry whose name is stored in GBK without the UTF-8 flag, as Alipay's bills are."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 - zipfile's hook
        return self.filename.encode("gbk"), self.flag_bits & ~0x800


def _cell(text: str) -> str:
    """Free text in a bill cell: no separators, no line breaks, only what GBK can write."""
    clean = text.replace(",", "，").replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return clean.encode("gbk", "replace").decode("gbk")


def _chinese_time(value: datetime) -> str:
    return value.astimezone(CHINA).strftime("%Y年%m月%d日 %H:%M:%S")


def detail_rows(rows: Sequence[BillRow]) -> list[str]:
    lines = []
    for row in rows:
        t, refund = row.trade, row.refund
        sign = 1 if refund is None else -1
        business = _BUSINESS[(refund is None, row.succeeded)]
        money = codec.yuan(sign * row.amount)
        cells = [
            t.channel_trade_no + _T,
            t.out_trade_no + _T,
            business + _T,
            _cell(t.subject),
            codec.format_beijing(t.created_at),
            codec.format_beijing(row.at),
            _T, _T, _T, _T,
            PAYER + _T,
            money, money, "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00" + _T, "0.00",
            (refund.refund_no if refund is not None else "") + _T,
            codec.yuan(-sign * row.fee),  # charged: negative; returned: positive
            "0.00",
            "",
        ]  # fmt: skip
        lines.append(",".join(cells))
    return lines


def build_bill(pid: str, day: date, rows: Sequence[BillRow], exported_at: datetime) -> tuple[str, bytes]:
    """(download file name, zip bytes) of the day's trade bill."""
    start = datetime.combine(day, time(0), CHINA)
    period = f"#起始日期：[{_chinese_time(start)}]   终止日期：[{_chinese_time(start + timedelta(days=1))}]"
    payments = [r for r in rows if r.refund is None]
    refunds = [r for r in rows if r.refund is not None]
    paid = sum(r.amount for r in payments)
    refunded = sum(r.amount for r in refunds)
    fees = sum(r.fee for r in refunds) - sum(r.fee for r in payments)  # 服务费 as written: charged is negative
    exported = f"#导出时间：[{_chinese_time(exported_at)}]"
    detail = [
        "#支付宝业务明细查询", f"#账号：[{pid}]", period, START, COLUMNS, *detail_rows(rows), END,
        f"#交易合计：{len(payments)}笔，商家实收共{codec.yuan(paid)}元，商家优惠共0.00元",
        f"#退款合计：{len(refunds)}笔，商家实收退款共{codec.yuan(-refunded)}元，商家优惠退款共0.00元",
        exported,
    ]  # fmt: skip
    net = codec.yuan(paid - refunded + fees)
    summary = [
        "#支付宝业务汇总查询", f"#账号：[{pid}]", period, SUMMARY_START, SUMMARY_COLUMNS,
        f",合计,{len(payments)},{len(refunds)},{codec.yuan(paid - refunded)},{codec.yuan(paid - refunded)},"
        f"0.00,0.00,0.00,{codec.yuan(fees)},0.00,{net}",
        SUMMARY_END, exported,
    ]  # fmt: skip
    stem = f"{pid}_{day:%Y%m%d}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, lines in ((f"{stem}_业务明细.csv", detail), (f"{stem}_业务明细(汇总).csv", summary)):
            info = _GbkName(name, date_time=exported_at.astimezone(CHINA).timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, ("\r\n".join(lines) + "\r\n").encode("gbk", "replace"))
    return f"{stem}.csv.zip", buffer.getvalue()
