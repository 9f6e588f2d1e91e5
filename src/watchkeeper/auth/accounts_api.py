"""REST API for accounts: the caller (`/me`), their API tokens, and users (admins); teams and the audit
log come from `team_api` under the same router."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Connection

from watchkeeper.api import MAX_INT, Account, AdminEditor, AdminReader, Reader, Text, read, runtime_of, write
from watchkeeper.auth import tokens as K
from watchkeeper.auth import users as U
from watchkeeper.auth.access import Principal
from watchkeeper.auth.audit import record
from watchkeeper.auth.projects import get_project
from watchkeeper.auth.sessions import end_user_sessions
from watchkeeper.auth.team_api import router as team_router
from watchkeeper.auth.teams import list_teams

router = APIRouter(tags=["accounts"])
UserId = Annotated[int, Path(ge=1, le=MAX_INT)]
TokenId = Annotated[int, Path(ge=1, le=MAX_INT)]
Role = Literal["admin", "member", "viewer"]


def _valid_zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not an IANA time zone name (like Europe/Paris): {value[:64]!r}") from None
    return value


class MeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timezone: Text | None = Field(None, max_length=64, description="IANA name; null = the browser's zone")

    _zone = field_validator("timezone")(_valid_zone)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: str = Field(min_length=8, max_length=1000)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(min_length=1, max_length=200)
    read_only: bool = False
    project_ids: list[Annotated[int, Field(ge=1, le=MAX_INT)]] | None = Field(
        None, max_length=1000, description="limit the token to these projects; null = all you can see"
    )


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Text = Field(min_length=3, max_length=254)
    role: Role = "member"
    password: str | None = Field(None, min_length=8, max_length=1000, description="default: a generated one")


class UserChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role | None = None
    is_active: bool | None = None


def user_json(conn: Connection, user: U.User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "role": user.role,
        "is_active": user.is_active,
        "timezone": U.user_timezone(conn, user.id),
        "teams": [{"id": t.id, "name": t.name} for t in list_teams(conn, user_id=user.id)],
    }


def token_json(token: K.TokenSummary) -> dict[str, Any]:
    return {
        "id": token.id, "name": token.name, "prefix": token.prefix, "read_only": token.read_only,
        "project_ids": token.project_ids, "created_at": token.created_at, "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
    }


def _audit(conn: Connection, principal: Principal, action: str, target: tuple[str, int], now: float,
           **details: Any) -> None:
    record(
        conn, actor_user_id=principal.user_id, action=action, target_type=target[0], target_id=target[1],
        details=details, now=now,
    )


def _not_read_only(principal: Principal) -> None:
    if principal.read_only:
        raise HTTPException(403, "this token may only read")


async def _user_json(request: Request, user_id: int) -> dict[str, Any]:
    def load(conn: Connection) -> dict[str, Any] | None:
        user = U.get_user(conn, user_id)
        return user_json(conn, user) if user else None

    found = await read(request, load)
    if found is None:
        raise HTTPException(404, f"user {user_id} not found")
    return found


# --- the caller ---


@router.get("/me")
async def me(request: Request, principal: Reader) -> dict[str, Any]:
    """Who is calling, their teams, and how (a session, or a token with its limits)."""
    data = await _user_json(request, principal.user_id)
    data["auth"] = (
        {"via": "token", "token_id": principal.token_id, "read_only": principal.read_only,
         "project_ids": sorted(principal.scope) if principal.scope is not None else None}
        if principal.token_id is not None
        else {"via": "session"}
    )
    return data


@router.patch("/me")
async def change_me(request: Request, body: MeChange, principal: Account) -> dict[str, Any]:
    """Your own preferences (the time zone pages show times in)."""
    _not_read_only(principal)
    if "timezone" in body.model_fields_set:
        await write(
            request,
            lambda conn: U.change_user(conn, principal.user_id, timezone=body.timezone, clear_timezone=True),
        )
    return await _user_json(request, principal.user_id)


@router.post("/me/password", status_code=204)
async def change_my_password(request: Request, body: PasswordChange, principal: Account) -> None:
    """Change your password (the current one is required); your other sessions are logged out."""
    _not_read_only(principal)
    runtime = runtime_of(request)

    def change(conn: Connection) -> bool:
        from watchkeeper.auth.tables import users

        current = conn.execute(users.select().where(users.c.id == principal.user_id)).first()
        if current is None or not U.verify_password(current.password_hash, body.current_password):
            return False
        U.set_password(conn, principal.user_id, body.new_password)
        end_user_sessions(conn, principal.user_id, keep_session_id=principal.session_id)
        now = runtime.clock.now()
        _audit(conn, principal, "user.password_change", ("user", principal.user_id), now)
        return True

    if not await write(request, change):
        raise HTTPException(422, "current_password: wrong password")


# --- tokens ---


@router.get("/tokens", tags=["tokens"])
async def list_my_tokens(request: Request, principal: Account) -> list[dict[str, Any]]:
    return [token_json(t) for t in await read(request, lambda conn: K.list_tokens(conn, principal.user_id))]


def _check_token_scope(conn: Connection, principal: Principal, project_ids: list[int] | None) -> None:
    """A new token may not reach further than its maker: only visible projects."""
    if project_ids is None:
        return
    for project_id in project_ids:
        if not principal.can_read(project_id) or get_project(conn, project_id) is None:
            raise HTTPException(422, f"project_ids: no project {project_id}")


@router.post("/tokens", status_code=201, tags=["tokens"])
async def create_my_token(request: Request, body: TokenIn, principal: Account) -> dict[str, Any]:
    """A token for the caller, with the caller's role; the plain token is only in this answer."""
    _not_read_only(principal)
    now = runtime_of(request).clock.now()

    def create(conn: Connection) -> dict[str, Any]:
        _check_token_scope(conn, principal, body.project_ids)
        new = K.create_token(
            conn, principal.user_id, body.name, read_only=body.read_only, now=now, project_ids=body.project_ids
        )
        _audit(conn, principal, "token.create", ("token", new.id), now, name=new.name, read_only=body.read_only,
               project_ids=body.project_ids)
        summary = next(t for t in K.list_tokens(conn, principal.user_id) if t.id == new.id)
        return {**token_json(summary), "token": new.token}

    try:
        created: dict[str, Any] = await write(request, create)
    except ValueError as exc:  # a blank name
        raise HTTPException(422, str(exc)) from None
    return created


@router.delete("/tokens/{token_id}", status_code=204, tags=["tokens"])
async def revoke_my_token(request: Request, token_id: TokenId, principal: Account) -> None:
    _not_read_only(principal)
    now = runtime_of(request).clock.now()

    def revoke(conn: Connection) -> bool:
        if not K.revoke_token(conn, token_id, user_id=principal.user_id, now=now):
            return False
        _audit(conn, principal, "token.revoke", ("token", token_id), now)
        return True

    if not await write(request, revoke):
        raise HTTPException(404, f"token {token_id} not found")


# --- users (admins) ---


@router.get("/users", tags=["users"])
async def list_users(request: Request, principal: AdminReader) -> list[dict[str, Any]]:
    return await read(request, lambda conn: [user_json(conn, u) for u in U.list_users(conn)])


@router.post("/users", status_code=201, tags=["users"])
async def create_user(request: Request, body: UserIn, principal: AdminEditor) -> dict[str, Any]:
    """Create a user; without `password` one is generated and returned once."""
    password = body.password or U.generate_password()
    now = runtime_of(request).clock.now()

    def create(conn: Connection) -> dict[str, Any]:
        user = U.create_user(conn, body.email, password, role=body.role, now=now, one_time=not body.password)
        _audit(conn, principal, "user.create", ("user", user.id), now, email=user.email, role=user.role)
        return user_json(conn, user)

    try:
        created = await write(request, create)
    except U.UserError as exc:
        raise HTTPException(422, str(exc)) from None
    return {**created, **({} if body.password else {"password": password})}


@router.get("/users/{user_id}", tags=["users"])
async def get_user(request: Request, user_id: UserId, principal: AdminReader) -> dict[str, Any]:
    return await _user_json(request, user_id)


@router.patch("/users/{user_id}", tags=["users"])
async def change_user(request: Request, user_id: UserId, body: UserChange, principal: AdminEditor) -> dict[str, Any]:
    """Change a user's role or deactivate them (which also logs them out everywhere and revokes their API
    tokens)."""
    now = runtime_of(request).clock.now()

    def change(conn: Connection) -> U.User | None:
        user = U.change_user(conn, user_id, role=body.role, is_active=body.is_active)
        if user is None:
            return None
        if body.is_active is False:
            end_user_sessions(conn, user_id)
            K.revoke_user_tokens(conn, user_id, now=now)
        _audit(conn, principal, "user.change", ("user", user_id), now, **body.model_dump(exclude_unset=True))
        return user

    try:
        changed = await write(request, change)
    except U.UserError as exc:
        raise HTTPException(422, str(exc)) from None
    if changed is None:
        raise HTTPException(404, f"user {user_id} not found")
    return await _user_json(request, user_id)


@router.post("/users/{user_id}/password", tags=["users"])
async def reset_password(request: Request, user_id: UserId, principal: AdminEditor) -> dict[str, Any]:
    """Give a user a new generated password (returned once), log them out everywhere and revoke their API
    tokens."""
    password = U.generate_password()
    now = runtime_of(request).clock.now()

    def reset(conn: Connection) -> bool:
        if U.get_user(conn, user_id) is None:
            return False
        U.set_password(conn, user_id, password, one_time=True)
        end_user_sessions(conn, user_id)
        K.revoke_user_tokens(conn, user_id, now=now)
        _audit(conn, principal, "user.password_reset", ("user", user_id), now)
        return True

    if not await write(request, reset):
        raise HTTPException(404, f"user {user_id} not found")
    return {"id": user_id, "password": password}


router.include_router(team_router)
