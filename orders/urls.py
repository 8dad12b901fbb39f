from django.urls import path

from orders import api, post_trade_api

urlpatterns = [
    path("orders", api.OrderListCreate.as_view(), name="orders"),
    path("orders/cancel-all", post_trade_api.CancelAll.as_view(), name="orders-cancel-all"),
    path("orders/<uuid:pk>", api.OrderDetail.as_view(), name="order-detail"),
    path("fills", post_trade_api.FillList.as_view(), name="fills"),
    path("events", post_trade_api.EventFeed.as_view(), name="events"),
    path("positions", api.PositionList.as_view(), name="positions"),
    path("risk", api.RiskView.as_view(), name="risk"),
]
