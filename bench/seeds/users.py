"""The seeds' user service, as users run it today: FastAPI, users kept in memory.

Started by `bench/src/writes.rs` with one uvicorn worker: `uvicorn users:app --port N`.
"""

from datetime import datetime, timezone
from typing import Optional

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI(title="user-service")
users: dict[int, dict] = {}
emails: dict[str, int] = {}


class NewUser(BaseModel):
    name: str
    email: str
    age: Optional[int] = None


@app.post("/api/v1/users", status_code=201)
async def create_user(body: NewUser) -> dict:
    if not body.name or body.email.count("@") != 1:
        raise HTTPException(422, "invalid user")
    if body.email in emails:
        raise HTTPException(409, "email taken")
    user_id = len(users) + 1
    user = {"id": user_id, "name": body.name, "email": body.email, "age": body.age,
            "created_at": datetime.now(timezone.utc).isoformat()}
    users[user_id] = user
    emails[body.email] = user_id
    return user


@app.get("/api/v1/users/{user_id}")
async def get_user(user_id: int) -> dict:
    if user_id not in users:
        raise HTTPException(404, "user not found")
    return users[user_id]
