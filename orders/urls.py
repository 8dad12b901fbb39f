from django.urls import path

from orders import api

urlpatterns = [
    path("orders", api.OrderListCreate.as_view(), name="orders"),
    path("orders/<uuid:pk>", api.OrderDetail.as_view(), name="order-detail"),
    path("positions", api.PositionList.as_view(), name="positions"),
    path("risk", api.RiskView.as_view(), name="risk"),
]
