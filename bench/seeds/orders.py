"""The seeds' order service, as users run it today: FastAPI, orders kept in memory, each
order's user checked over HTTP at the user service with one shared async client.

Started by `bench/src/writes.rs` with one uvicorn worker: `USERS_URL=http://127.0.0.1:N
uvicorn orders:app --port M`.
"""

import os
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Union

import httpx
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

USERS_URL = os.environ["USERS_URL"]
client: httpx.AsyncClient
orders: dict[int, dict] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI):
    global client
    client = httpx.AsyncClient(base_url=USERS_URL, timeout=10.0)
    yield
    await client.aclose()


app = FastAPI(title="order-service", lifespan=lifespan)


class Item(BaseModel):
    product_id: Union[int, str]
    product_name: str
    quantity: int
    price: float


class NewOrder(BaseModel):
    user_id: int
    items: list[Item]
    shipping_address: str


@app.post("/api/v1/orders", status_code=201)
async def create_order(body: NewOrder) -> dict:
    if not body.items or any(i.quantity < 1 or i.price < 0 for i in body.items):
        raise HTTPException(422, "invalid items")
    try:
        answer = await client.get(f"/api/v1/users/{body.user_id}")
    except httpx.HTTPError as e:
        raise HTTPException(503, f"user service unavailable: {e}")
    if answer.status_code == 404:
        raise HTTPException(422, "unknown user")
    if answer.status_code != 200:
        raise HTTPException(503, "user service unavailable")
    order_id = len(orders) + 1
    order = {"id": order_id, "user_id": body.user_id, "items": [i.model_dump() for i in body.items],
             "total": sum(i.quantity * i.price for i in body.items), "status": "pending",
             "shipping_address": body.shipping_address,
             "created_at": datetime.now(timezone.utc).isoformat()}
    orders[order_id] = order
    return order


@app.get("/api/v1/orders/{order_id}")
async def get_order(order_id: int) -> dict:
    if order_id not in orders:
        raise HTTPException(404, "order not found")
    return orders[order_id]
