"""The channel simulator (`tomato sandbox`): Alipay today, WeChat and bank as sibling modules on the same state.

state = SandboxState(time_scale=60)
alipay = alipay_simulator(state)            # alipay.public_key_pem, alipay.register_app(app_id, pem)
app = create_sandbox_app(state)             # ASGI; lifespan shutdown closes state.notifier
"""

from tomato.channel.sandbox.alipay import AlipaySimulator
from tomato.channel.sandbox.app import alipay_simulator, bank_simulator, create_sandbox_app, wechat_simulator
from tomato.channel.sandbox.bank import BankSimulator
from tomato.channel.sandbox.notifier import Notifier
from tomato.channel.sandbox.state import Faults, SandboxState, SimTrade, TradeState
from tomato.channel.sandbox.wechat import WechatSimulator

__all__ = [
    "AlipaySimulator",
    "BankSimulator",
    "Faults",
    "Notifier",
    "SandboxState",
    "SimTrade",
    "TradeState",
    "WechatSimulator",
    "alipay_simulator",
    "bank_simulator",
    "create_sandbox_app",
    "wechat_simulator",
]
