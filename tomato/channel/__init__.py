"""Channels: the adapter protocol, the Alipay/WeChat/bank adapters, channel accounts, routing and breakers,
and the channel simulator (`channel.sandbox`). This context knows nothing of orders: adapters take plain
request values and return `ChannelResult`s.
"""
